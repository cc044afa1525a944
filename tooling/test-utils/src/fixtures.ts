import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One folder of reference numbers from the official ml-mdm code (see shared/fixtures/ml-mdm/README.md). */
export interface FixtureFolder<C = FixtureConfig> {
  /** The folder's name (used in test names). */
  name: string;
  dir: string;
  /** Parsed `config.json`. */
  config: C;
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
  /** Video folders (`temporal: true`): frames per level; such a level's tensors are clip images tiled √F × √F. */
  temporal?: boolean;
  video?: { frames: number; tile_grid: number; frames_per_level: number[]; frame_size_per_level: number[] };
  [key: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');

/**
 * Kinds of fixture folder, told apart by `config.json`'s `kind` (ml-mdm's NestedUNet folders have
 * none) and `temporal` (ml-mdm's video NestedUNets), each with its own shared folder.
 */
export type FixtureKind = 'ml-mdm' | 'ml-mdm-video' | 'ldm-autoencoder-kl';

const SHARED_FOLDER: Record<FixtureKind, string> = {
  'ml-mdm': 'ml-mdm',
  'ml-mdm-video': 'ml-mdm-video',
  'ldm-autoencoder-kl': 'ldm-autoencoder',
};

/**
 * `../shared/fixtures/ml-mdm` (or the kind's folder) beside the checkout. MDM_FIXTURES_DIR
 * overrides the ml-mdm folder; its sibling folders are then the other kinds'.
 */
export function sharedFixturesDir(kind: FixtureKind = 'ml-mdm'): string {
  const override = process.env.MDM_FIXTURES_DIR;
  if (override) return kind === 'ml-mdm' ? override : resolve(override, '..', SHARED_FOLDER[kind]);
  return resolve(repoRoot, '..', 'shared', 'fixtures', SHARED_FOLDER[kind]);
}

function kindOf(folder: FixtureFolder<{ kind?: unknown; temporal?: unknown }>): FixtureKind {
  if (folder.config.kind === 'ldm-autoencoder-kl') return 'ldm-autoencoder-kl';
  return folder.config.temporal === true ? 'ml-mdm-video' : 'ml-mdm';
}

function isFixtureDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'weights.safetensors'));
}

function load<C>(dir: string): FixtureFolder<C> {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as C;
  return { name: basename(dir), dir, config, file: (n) => join(dir, `${n}.safetensors`) };
}

export interface FixtureDiscovery<C = FixtureConfig> {
  folders: FixtureFolder<C>[];
  /** Why the shared folder is missing, when it is (a user's clone has no ../shared). */
  missing?: string;
}

/**
 * Every fixture folder of one kind: those under the kind's shared fixtures directory, plus each
 * path listed in MDM_EXTRA_FIXTURES (colon-separated; a path may be a fixture folder or a folder
 * of them) whose `config.json` says that kind.
 */
export function discoverFixtures<C = FixtureConfig>(kind: FixtureKind = 'ml-mdm'): FixtureDiscovery<C> {
  const folders: FixtureFolder<C>[] = [];
  const extra: FixtureFolder<C>[] = [];
  const root = sharedFixturesDir(kind);
  let missing: string | undefined;
  if (existsSync(root) && statSync(root).isDirectory()) {
    for (const entry of readdirSync(root).sort()) {
      const dir = join(root, entry);
      if (statSync(dir).isDirectory() && isFixtureDir(dir)) folders.push(load<C>(dir));
    }
  } else {
    missing = `fixture folder ${root} not found`;
  }
  for (const raw of (process.env.MDM_EXTRA_FIXTURES ?? '').split(':').filter(Boolean)) {
    const dir = resolve(raw);
    if (isFixtureDir(dir)) extra.push(load<C>(dir));
    else if (existsSync(dir) && statSync(dir).isDirectory()) {
      const inside = readdirSync(dir)
        .sort()
        .map((e) => join(dir, e))
        .filter((d) => statSync(d).isDirectory() && isFixtureDir(d));
      if (inside.length === 0)
        throw new Error(`MDM_EXTRA_FIXTURES: ${dir} holds no fixture folder (config.json + weights.safetensors)`);
      extra.push(...inside.map((d) => load<C>(d)));
    } else {
      throw new Error(`MDM_EXTRA_FIXTURES: ${dir} does not exist`);
    }
  }
  const ofKind = extra.filter((f) => kindOf(f as FixtureFolder<{ kind?: unknown; temporal?: unknown }>) === kind);
  return { folders: [...folders, ...ofKind], missing };
}

/** True when running under CI (CI=true), where missing fixtures are a failure, not a skip. */
export function underCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}
