import { loadAddon } from '@matryoshka-ts/kernels-native';

/**
 * Whether the `native` backend can run here. Where the addon could not be built the native
 * suites skip, unless MDM_REQUIRE_NATIVE=1 (set by CI, whose machines can build it).
 */
export function nativeAvailable(): boolean {
  const loaded = loadAddon();
  if (loaded.addon) return true;
  if (process.env.MDM_REQUIRE_NATIVE === '1') throw new Error(`MDM_REQUIRE_NATIVE=1 but ${loaded.reason}`);
  console.warn(`[parity] skipping the native backend: ${loaded.reason}`);
  return false;
}
