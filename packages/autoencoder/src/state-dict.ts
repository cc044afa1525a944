import type { ParamSpec } from '@matryoshka-ts/core';
import {
  CheckpointMismatchError,
  type TensorEntry,
  type TensorSource,
  fromTorchLayout,
  toFloat32,
  toTorchLayout,
  torchShape,
} from '@matryoshka-ts/checkpoint';

/**
 * The autoencoder's weights under the two names they circulate with:
 * - `compvis`: CompVis latent-diffusion's state dict (`encoder.down.0.block.0.norm1.weight`, …),
 *   which are also our parameter names;
 * - `diffusers`: Hugging Face diffusers' `AutoencoderKL` (`encoder.down_blocks.0.resnets.0…`,
 *   decoder `up_blocks` in reverse order, attention as linear `to_q`/`to_k`/`to_v`/`to_out.0`,
 *   or the older `query`/`key`/`value`/`proj_attn`).
 * Layouts are PyTorch's in both (OIHW convolutions); we convert to HWIO at this boundary only.
 */
export type WeightNaming = 'compvis' | 'diffusers';

const ATTENTION_DIFFUSERS: Record<string, [string, string]> = {
  norm: ['group_norm', 'group_norm'],
  q: ['to_q', 'query'],
  k: ['to_k', 'key'],
  v: ['to_v', 'value'],
  proj_out: ['to_out.0', 'proj_attn'],
};

const RESNET_DIFFUSERS: Record<string, string> = { nin_shortcut: 'conv_shortcut' };

/**
 * The diffusers names of one of our (CompVis) parameter names, newest first (attention weights
 * also have a legacy name). `levels` is `chMult.length` (the decoder's `up.i` is `up_blocks.(levels−1−i)`).
 */
export function diffusersNames(name: string, levels: number): string[] {
  const parts = name.split('.');
  const [half, kind] = parts;
  const leaf = parts.at(-1)!; // weight | bias
  let base: string[];
  let rest: string[];
  if (kind === 'norm_out') return [`${half}.conv_norm_out.${leaf}`];
  if (kind === 'mid') {
    const which = parts[2]; // block_1 | attn_1 | block_2
    base =
      which === 'attn_1'
        ? [half, 'mid_block', 'attentions', '0']
        : [half, 'mid_block', 'resnets', which === 'block_1' ? '0' : '1'];
    rest = parts.slice(3);
    return which === 'attn_1' ? attentionNames(base, rest) : [[...base, ...resnetPart(rest)].join('.')];
  }
  if (kind === 'down' || kind === 'up') {
    const i = Number(parts[2]);
    const blocks = kind === 'down' ? 'down_blocks' : 'up_blocks';
    const index = String(kind === 'down' ? i : levels - 1 - i);
    const what = parts[3]; // block | attn | downsample | upsample
    if (what === 'downsample' || what === 'upsample') {
      const samplers = what === 'downsample' ? 'downsamplers' : 'upsamplers';
      return [[half, blocks, index, samplers, '0', ...parts.slice(4)].join('.')];
    }
    base = [half, blocks, index, what === 'attn' ? 'attentions' : 'resnets', parts[4]];
    rest = parts.slice(5);
    return what === 'attn' ? attentionNames(base, rest) : [[...base, ...resnetPart(rest)].join('.')];
  }
  return [name]; // conv_in, conv_out, quant_conv, post_quant_conv
}

function resnetPart(rest: string[]): string[] {
  return [RESNET_DIFFUSERS[rest[0]] ?? rest[0], ...rest.slice(1)];
}

function attentionNames(base: string[], rest: string[]): string[] {
  const [current, legacy] = ATTENTION_DIFFUSERS[rest[0]] ?? [rest[0], rest[0]];
  const names = [[...base, current, ...rest.slice(1)].join('.')];
  if (legacy !== current) names.push([...base, legacy, ...rest.slice(1)].join('.'));
  return names;
}

/** Which naming a state dict uses, from its key names. */
export function detectNaming(names: Iterable<string>): WeightNaming {
  for (const n of names) if (/(^|\.)(down_blocks|up_blocks|mid_block)\./.test(n)) return 'diffusers';
  return 'compvis';
}

/** Prefixes under which checkpoints commonly hold the autoencoder (a whole Stable Diffusion checkpoint, a pipeline). */
const KNOWN_PREFIXES = ['first_stage_model.', 'vae.'];

export interface AutoencoderImportOptions {
  /** `auto` (default) tells them apart by key names. */
  naming?: WeightNaming | 'auto';
  /**
   * Read keys under this prefix only. Default: `first_stage_model.` or `vae.` when every
   * autoencoder key sits under one of them, else none.
   */
  prefix?: string;
}

export interface AutoencoderImport {
  values: Map<string, Float32Array>;
  naming: WeightNaming;
  prefix: string;
  /** Keys of CompVis's training loss (`loss.*`: LPIPS, discriminator, logvar), which an autoencoder does not use. */
  ignored: string[];
}

/**
 * Our parameter values from a CompVis or diffusers state dict. Every missing, unexpected and
 * misshaped key is listed, in the file's own names, in one `CheckpointMismatchError`.
 */
export function importAutoencoderStateDict(
  specs: readonly ParamSpec[],
  levels: number,
  source: TensorSource,
  options: AutoencoderImportOptions = {},
): AutoencoderImport {
  const all = [...source.names];
  const prefix = options.prefix ?? KNOWN_PREFIXES.find((p) => all.some((n) => n.startsWith(`${p}encoder.`))) ?? '';
  const names = all.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  const naming = !options.naming || options.naming === 'auto' ? detectNaming(names) : options.naming;
  const present = new Set(names);
  const ignored = names.filter((n) => n.startsWith('loss.')).map((n) => prefix + n);
  const used = new Set<string>();
  const missing: string[] = [];
  const wrongShape: string[] = [];
  const values = new Map<string, Float32Array>();
  for (const spec of specs) {
    const candidates = naming === 'compvis' ? [spec.name] : diffusersNames(spec.name, levels);
    const key = candidates.find((c) => present.has(c));
    if (!key) {
      missing.push(prefix + candidates[0]);
      continue;
    }
    used.add(key);
    const entry = source.read(prefix + key);
    const expected = torchShape(spec);
    // diffusers keeps the attention projections as linear layers: [out, in] for our 1×1 [out, in, 1, 1].
    const squeezed = spec.layout === 'conv2d' && spec.shape[0] === 1 && spec.shape[1] === 1;
    const fits =
      entry.shape.join() === expected.join() || (squeezed && entry.shape.join() === expected.slice(0, 2).join());
    if (!fits) {
      wrongShape.push(`${prefix + key} [${entry.shape}] (model expects [${expected}])`);
      continue;
    }
    values.set(spec.name, fromTorchLayout(spec, toFloat32(entry.data)));
  }
  const unexpected = names.filter((n) => !used.has(n) && !n.startsWith('loss.')).map((n) => prefix + n);
  if (missing.length || unexpected.length || wrongShape.length)
    throw new CheckpointMismatchError(missing, unexpected, wrongShape);
  return { values, naming, prefix, ignored };
}

/**
 * Our values as a state dict in either naming (PyTorch layouts, float32; diffusers attention as
 * linear weights under the current `to_q`/`to_k`/`to_v`/`to_out.0` names).
 */
export function exportAutoencoderStateDict(
  specs: readonly ParamSpec[],
  levels: number,
  values: Map<string, Float32Array>,
  naming: WeightNaming = 'compvis',
): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  const missing: string[] = [];
  for (const spec of specs) {
    const data = values.get(spec.name);
    if (!data) {
      missing.push(spec.name);
      continue;
    }
    let shape = torchShape(spec);
    let name = spec.name;
    if (naming === 'diffusers') {
      name = diffusersNames(spec.name, levels)[0];
      if (/\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name)) shape = shape.slice(0, 2);
    }
    out.set(name, { dtype: 'F32', shape, data: toTorchLayout(spec, data) });
  }
  if (missing.length) throw new CheckpointMismatchError(missing, [], []);
  return out;
}
