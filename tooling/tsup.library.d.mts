import type { Options } from 'tsup';

/** The build of every library package (see tsup.library.mjs). */
declare const config: Options | Options[];
export default config;
