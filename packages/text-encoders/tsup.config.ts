import { libraryConfig } from '../../tooling/tsup.library.mjs';

// `@matryoshka-ts/text-encoders/browser` (src/browser.ts): the encoders without Node modules.
export default libraryConfig(['src/index.ts', 'src/browser.ts']);
