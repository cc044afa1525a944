import { libraryConfig } from '../../tooling/tsup.library.mjs';

// `@matryoshka-ts/checkpoint/bytes` (src/bytes.ts): the in-memory format, no Node module.
export default libraryConfig(['src/index.ts', 'src/bytes.ts']);
