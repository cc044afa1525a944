import { sharedConfig } from '@matryoshka-ts/test-utils/vitest';

// Packing, installing with npm and a training run from the tarballs take minutes, not seconds.
export default sharedConfig({ testTimeout: 600_000 });
