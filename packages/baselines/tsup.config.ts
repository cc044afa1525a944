export { default } from '../../tooling/tsup.library.mjs';
