import type { Options } from 'tsup';

/** The build of a library package from its entry files (see tsup.library.mjs). */
export declare function libraryConfig(entry?: string[]): Options | Options[];
/** The build of every library package with one entry, src/index.ts (see tsup.library.mjs). */
declare const config: Options | Options[];
export default config;
