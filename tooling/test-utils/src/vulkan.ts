import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Where tooling/scripts/lavapipe.sh keeps Mesa's software Vulkan driver and its ICD file. */
export function lavapipeIcd(): string | undefined {
  const root = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const icd = join(root, 'matryoshka-ts', 'lavapipe', 'lvp_icd.json');
  return existsSync(icd) ? icd : undefined;
}

/**
 * Adds the lavapipe that tooling/scripts/lavapipe.sh fetched (Debian 12's own is too old for
 * Dawn) to the Vulkan loader's drivers for this process, so that ONNX Runtime's WebGPU provider
 * finds a software adapter on a machine without a GPU; a GPU's driver still wins (Dawn asks for a
 * high-performance adapter). Call it before the first WebGPU session. An explicit
 * VK_ICD_FILENAMES or VK_DRIVER_FILES is left alone. Returns the ICD file added, if any.
 */
export function softwareVulkan(): string | undefined {
  const icd = lavapipeIcd();
  if (!icd || process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return undefined;
  const added = (process.env.VK_ADD_DRIVER_FILES ?? '').split(delimiter).filter(Boolean);
  if (!added.includes(icd)) process.env.VK_ADD_DRIVER_FILES = [...added, icd].join(delimiter);
  return icd;
}
