import { lossParitySuite } from './loss-parity.js';
import { nativeAvailable } from './native.js';

lossParitySuite('cpu');
lossParitySuite('wasm');
if (nativeAvailable()) lossParitySuite('native');
