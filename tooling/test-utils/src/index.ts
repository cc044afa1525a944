export { discoverFixtures, sharedFixturesDir, underCi } from './fixtures.js';
export type { FixtureConfig, FixtureDiscovery, FixtureFolder } from './fixtures.js';
export { maxAbs, maxAbsDiff } from './compare.js';
export { seeded } from './random.js';
