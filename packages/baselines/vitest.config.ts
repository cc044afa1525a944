import { sharedConfig } from '@matryoshka-ts/test-utils/vitest';

export default sharedConfig();
