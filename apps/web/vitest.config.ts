import { sharedConfig } from '@matryoshka-ts/test-utils/vitest';

// The browser test trains, exports, builds and samples in one go: up to 3 minutes where slow.
export default sharedConfig({ testTimeout: 180_000 });
