import { samplerParitySuite } from './sampler-parity.js';
import { nativeAvailable } from './native.js';

// Both backends in one file: the suites run one after another, each selecting its backend in
// beforeAll and building its own model.
samplerParitySuite('cpu');
samplerParitySuite('wasm');
if (nativeAvailable()) samplerParitySuite('native');
