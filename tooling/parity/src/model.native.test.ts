import { modelParitySuite } from './model-parity.js';
import { nativeAvailable } from './native.js';

// The wasm backend with the addon's convolutions and matrix products.
if (nativeAvailable()) modelParitySuite('native');
