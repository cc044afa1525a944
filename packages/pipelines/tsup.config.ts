import { libraryConfig } from '../../tooling/tsup.library.mjs';

// `@matryoshka-ts/pipelines/browser` (src/browser.ts): what a web page runs, no Node module.
export default libraryConfig(['src/index.ts', 'src/browser.ts']);
