export { discoverFixtures, sharedFixturesDir, underCi } from './fixtures.js';
export type { FixtureConfig, FixtureDiscovery, FixtureFolder, FixtureKind } from './fixtures.js';
export { maxAbs, maxAbsDiff } from './compare.js';
export { seeded } from './random.js';
export { ONNX_FLOAT, ONNX_INT64, onnxModel } from './onnx-model.js';
export type { OnnxGraph, OnnxInitializer, OnnxNode, OnnxValue } from './onnx-model.js';
export { paxRecord, tar } from './tar-writer.js';
export type { TarWriterMember } from './tar-writer.js';
export { findPython, pythonCandidates } from './python.js';
