import type { UserConfig } from 'vitest/config';

/** Vitest settings shared by every package (see vitest.mjs). */
export declare function sharedConfig(options?: { testTimeout?: number }): UserConfig;
