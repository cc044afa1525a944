import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One folder of reference numbers from the official ml-mdm code (see shared/fixtures/ml-mdm/README.md). */
export interface FixtureFolder {
  /** The folder's name (used in test names). */
  name: string;
  dir: string;
  /** Parsed `config.json`. */
  config: FixtureConfig;
  file(name: 'weights' | 'io' | 'schedule' | 'loss' | 'sampler'): string;
}

/** The parts of a fixture's `config.json` the suites read (see the fixture README). */
export interface FixtureConfig {
  name: string;
  architecture: 'unet' | 'nested';
  num_levels: number;
  image_channels: number;
  param_count: number;
  levels: Array<Record<string, unknown> & { resolution: number; state_dict_prefix: string; param_count: number }>;
  schedule: { level_scales: number[]; shift_power: number; shifted: boolean; num_diffusion_steps: number };
  ml_mdm_config: Record<string, unknown>;
  [key: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');

/** `../shared/fixtures/ml-mdm` beside the checkout (overridable with MDM_FIXTURES_DIR). */
export function sharedFixturesDir(): string {
  return process.env.MDM_FIXTURES_DIR ?? resolve(repoRoot, '..', 'shared', 'fixtures', 'ml-mdm');
}

function isFixtureDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'weights.safetensors'));
}

function load(dir: string): FixtureFolder {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as FixtureConfig;
  return { name: basename(dir), dir, config, file: (n) => join(dir, `${n}.safetensors`) };
}

export interface FixtureDiscovery {
  folders: FixtureFolder[];
  /** Why the shared folder is missing, when it is (a user's clone has no ../shared). */
  missing?: string;
}

/**
 * Every fixture folder: those under the shared fixtures directory, plus each path listed in
 * MDM_EXTRA_FIXTURES (colon-separated; a path may be a fixture folder or a folder of them).
 */
export function discoverFixtures(): FixtureDiscovery {
  const folders: FixtureFolder[] = [];
  const root = sharedFixturesDir();
  let missing: string | undefined;
  if (existsSync(root) && statSync(root).isDirectory()) {
    for (const entry of readdirSync(root).sort()) {
      const dir = join(root, entry);
      if (statSync(dir).isDirectory() && isFixtureDir(dir)) folders.push(load(dir));
    }
  } else {
    missing = `fixture folder ${root} not found`;
  }
  for (const raw of (process.env.MDM_EXTRA_FIXTURES ?? '').split(':').filter(Boolean)) {
    const dir = resolve(raw);
    if (isFixtureDir(dir)) folders.push(load(dir));
    else if (existsSync(dir) && statSync(dir).isDirectory()) {
      const inside = readdirSync(dir)
        .sort()
        .map((e) => join(dir, e))
        .filter((d) => statSync(d).isDirectory() && isFixtureDir(d));
      if (inside.length === 0)
        throw new Error(`MDM_EXTRA_FIXTURES: ${dir} holds no fixture folder (config.json + weights.safetensors)`);
      folders.push(...inside.map(load));
    } else {
      throw new Error(`MDM_EXTRA_FIXTURES: ${dir} does not exist`);
    }
  }
  return { folders, missing };
}

/** True when running under CI (CI=true), where missing fixtures are a failure, not a skip. */
export function underCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}
