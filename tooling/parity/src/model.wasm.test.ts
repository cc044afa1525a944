import { modelParitySuite } from './model-parity.js';

modelParitySuite('wasm');
