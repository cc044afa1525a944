import { sharedConfig } from '@matryoshka-ts/test-utils/vitest';

// A fixture folder added through MDM_EXTRA_FIXTURES may hold a larger model than the shared ones;
// its backward pass on the pure-JS cpu backend can take minutes.
export default sharedConfig({ testTimeout: 600_000 });
