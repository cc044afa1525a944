import { autoencoderParitySuite } from './autoencoder-parity.js';
import { nativeAvailable } from './native.js';

// The wasm backend with the addon's convolutions and matrix products.
if (nativeAvailable()) autoencoderParitySuite('native');
