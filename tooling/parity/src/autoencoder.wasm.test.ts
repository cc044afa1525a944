import { autoencoderParitySuite } from './autoencoder-parity.js';

autoencoderParitySuite('wasm');
