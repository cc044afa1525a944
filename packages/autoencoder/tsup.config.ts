import { libraryConfig } from '../../tooling/tsup.library.mjs';

// `@matryoshka-ts/autoencoder/config` (src/config.ts): presets and config schema, no Node module
// (what a run config's validation needs in a web page).
export default libraryConfig(['src/index.ts', 'src/config.ts']);
