// What a training step would need, from the config alone: the largest tensors and the memory of
// each phase. No Node module (`parseTrainConfig` runs `checkTensorSizes`, also in a web page); the
// check against this machine's memory is memory-plan.ts.
import { ConfigError } from '@matryoshka-ts/core';
import { type NestedUNetConfig, type ResolvedLevel, nestedUNetSpecs, resolveConfig } from '@matryoshka-ts/nested-unet';
import type { TrainConfig } from './config.js';
import { levelName, phaseLevel, phaseModelConfig } from './phases.js';

/** Every tensor is float32. */
const FLOAT = 4;

/**
 * The largest tensor held in a JS typed array, in bytes: `buffer.constants.MAX_LENGTH` (4 GiB on
 * Node 20, whose Float32Array stops at 2^32 elements; counting bytes is the safe reading across
 * Node versions). It is also the whole 32-bit WebAssembly memory of the `wasm` and `native`
 * backends, where every tensor lives. Every backend holds the data batch and each parameter in a
 * typed array (initial values, checkpoints); the `cpu`, `wasm` and `native` backends every
 * activation too (libtensorflow, the `tensorflow` backend, keeps those in its own memory).
 * Node's buffer module is looked up at run time (`process.getBuiltinModule`, Node ≥ 20.16), not
 * imported, so that configs parse in a web page; there, and on older Node 20 releases (whose
 * value it is), 4 GiB.
 */
export const MAX_TENSOR_BYTES = Math.min(nodeMaxLength() ?? 2 ** 32, Number.MAX_SAFE_INTEGER);

function nodeMaxLength(): number | undefined {
  const runtime = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const buffer = runtime?.getBuiltinModule?.('buffer') as { constants?: { MAX_LENGTH?: number } } | undefined;
  return buffer?.constants?.MAX_LENGTH;
}
/** The same bound in float32 elements. */
export const MAX_TENSOR_ELEMENTS = Math.floor(MAX_TENSOR_BYTES / FLOAT);

/** Copies of every parameter a training step holds: weights, EMA, Adam's m and v, and the gradients. */
export const COPIES_PER_PARAMETER = 5;

/** A config field a size comes from, and its value. */
export interface SizeField {
  field: string;
  value: number;
}

/** One tensor of a training step: what it is, its shape, and the fields its size comes from. */
export interface TensorSize {
  /** e.g. `activation in stage 0 at 64 px of the 64 px level`, `parameter down_blocks.0.resnets.0.conv1.weight`. */
  what: string;
  shape: number[];
  elements: number;
  bytes: number;
  /** The fields its size comes from, the one most responsible first. */
  fields: SizeField[];
}

/** The memory one phase of training needs (an estimate: see `memoryPlan`). */
export interface PhaseMemory {
  /** Index into `phases`. */
  phase: number;
  batchSize: number;
  /** The phase model's parameters. */
  params: number;
  /** `COPIES_PER_PARAMETER` float32 copies of every parameter. */
  paramBytes: number;
  /** The activations the forward pass keeps for the backward pass. */
  activationBytes: number;
  totalBytes: number;
  /** The largest single tensor of any kind. */
  largest: TensorSize;
  /** The largest data batch (a level's noisy input), parameter and activation tensor. */
  largestInput: TensorSize;
  largestParam: TensorSize;
  largestActivation: TensorSize;
  /** The stage whose activations weigh most: which, its bytes, and its fields (batch, resolution, channels). */
  heaviest: { where: string; bytes: number; fields: SizeField[] };
  /** The level holding the most parameters: its `channels` field and its parameter count. */
  largestLevel: { field: string; channels: number[]; where: string; params: number };
}

/** The estimate of every phase, the phase that needs the most, and the largest tensor of any phase. */
export interface MemoryPlan {
  phases: PhaseMemory[];
  peak: PhaseMemory;
  largest: TensorSize;
}

/** The config fields a plan reads. */
export type MemoryPlanConfig = Pick<TrainConfig, 'model' | 'phases' | 'conditioning'>;

/** Bytes in decimal units, as the operating system reports memory: `4.3 GB`, `1.5 TB`. */
export function formatBytes(bytes: number): string {
  const units: Array<[string, number]> = [
    ['EB', 1e18],
    ['PB', 1e15],
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ];
  for (const [unit, size] of units) if (bytes >= size) return `${round(bytes / size)} ${unit}`;
  return `${bytes} B`;
}

function round(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  return x >= 10 ? x.toFixed(1).replace(/\.0$/, '') : x.toFixed(2).replace(/\.?0+$/, '');
}

/** How unusual a value is for a field (its value over a common size): the most unusual one is named first. */
const TYPICAL: Array<[RegExp, number]> = [
  [/batchSize$/, 64],
  [/resolution$/, 256],
  [/channels\[\d+\]$/, 512],
  [/attentionHeads$/, 16],
  [/imageChannels$/, 4],
];
function unusual(f: SizeField): number {
  const typical = TYPICAL.find(([re]) => re.test(f.field))?.[1] ?? 1;
  return f.value / typical;
}

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The memory a training step of each phase would need, estimated from the config alone (nothing
 * is allocated). It counts, in float32:
 * - parameters × `COPIES_PER_PARAMETER` (weights, EMA, Adam m and v, gradients), from the exact
 *   parameter shapes of the phase's model;
 * - activations: the tensors the forward pass keeps for the backward pass, per level and stage at
 *   the phase's batch (× frames for a clip) and the stage's resolution² — per residual block its
 *   input and five outputs of its width (norm, conv, modulated norm, conv, skip), the up path's
 *   concatenated input, per spatial attention layer twelve of its width plus the logits and their
 *   softmax (heads × pixels² per image, and heads × tokens for text) and ten more with the
 *   feed-forward, per temporal attention layer twelve plus its logits over frames, the resampling
 *   outputs, the adapters between levels, and the image-sized inputs, targets and errors.
 * It leaves out the gradients of activations during the backward pass (freed as it goes), the
 * time embeddings and conditioning (small), the frozen text encoder, the data pipeline and the
 * runtime itself: an upper-level estimate of the step, not of the process.
 */
export function memoryPlan(config: MemoryPlanConfig, model: NestedUNetConfig): MemoryPlan {
  const full = resolveConfig(model);
  const tokens = config.conditioning.kind === 'text' ? config.conditioning.encoder.maxTokens : 0;
  const phases = config.phases.map((phase, p) => {
    const from = phaseLevel(model, phase, p);
    const specs = nestedUNetSpecs(phaseModelConfig(model, from));
    let params = 0;
    let largestParam: TensorSize | undefined;
    const levelParams = new Map<number, number>();
    for (const spec of specs) {
      const elements = product(spec.shape);
      params += elements;
      const level = from + (spec.name.match(/inner_unet\./g)?.length ?? 0);
      levelParams.set(level, (levelParams.get(level) ?? 0) + elements);
      if (!largestParam || elements > largestParam.elements) {
        largestParam = {
          what: `parameter ${spec.name}`,
          shape: spec.shape,
          elements,
          bytes: elements * FLOAT,
          fields: paramFields(full.levels[level], spec.shape, model),
        };
      }
    }
    const acts = activations(full.levels.slice(from), full, phase.batchSize, p, tokens);
    const largest = [acts.input, largestParam!, acts.largest].reduce((a, b) => (b.elements > a.elements ? b : a));
    const [level, levelCount] = [...levelParams].reduce((a, b) => (b[1] > a[1] ? b : a));
    const paramBytes = params * FLOAT * COPIES_PER_PARAMETER;
    const activationBytes = acts.floats * FLOAT;
    return {
      phase: p,
      batchSize: phase.batchSize,
      params,
      paramBytes,
      activationBytes,
      totalBytes: paramBytes + activationBytes,
      largest,
      largestInput: acts.input,
      largestParam: largestParam!,
      largestActivation: acts.largest,
      heaviest: acts.heaviest,
      largestLevel: {
        field: `${levelPath(level)}channels`,
        channels: full.levels[level].channels,
        where: levelName(full.levels[level].resolution, full.levels[level].frames),
        params: levelCount,
      },
    } satisfies PhaseMemory;
  });
  const peak = phases.reduce((a, b) => (b.totalBytes > a.totalBytes ? b : a));
  const largest = phases.map((p) => p.largest).reduce((a, b) => (b.elements > a.elements ? b : a));
  return { phases, peak, largest };
}

function levelPath(index: number): string {
  return `model.${'inner.'.repeat(index)}`;
}

/** The field a parameter's largest dimension comes from: its level's channels, time embedding, or the conditioning. */
function paramFields(level: ResolvedLevel, shape: number[], model: NestedUNetConfig): SizeField[] {
  const path = levelPath(level.index);
  const candidates: SizeField[] = [
    ...level.channels.map((value, s) => ({ field: `${path}channels[${s}]`, value })),
    { field: `${path}timeEmbedDim`, value: level.timeEmbedDim },
    ...(model.text
      ? [
          { field: 'model.text.featureDim', value: model.text.featureDim },
          { field: 'model.text.projDim', value: model.text.projDim },
        ]
      : []),
    ...(model.labels ? [{ field: 'model.labels.numClasses', value: model.labels.numClasses }] : []),
  ];
  for (const dim of [...shape].sort((a, b) => b - a)) {
    const found = candidates.find((c) => c.value === dim);
    if (found) return [found];
  }
  return [{ field: `${path}channels`, value: Math.max(...level.channels) }];
}

/** The activations of a phase's levels (`levels`: the full model's, from the phase's top level in). */
function activations(
  levels: ResolvedLevel[],
  model: ReturnType<typeof resolveConfig>,
  batch: number,
  phase: number,
  tokens: number,
): { floats: number; input: TensorSize; largest: TensorSize; heaviest: PhaseMemory['heaviest'] } {
  let floats = 0;
  let input: TensorSize | undefined;
  let largest: TensorSize | undefined;
  let heaviest: PhaseMemory['heaviest'] | undefined;
  const batchField = { field: `phases.${phase}.batchSize`, value: batch };
  const heads = model.attentionHeads;
  for (const level of levels) {
    const path = levelPath(level.index);
    const stages = level.channels.length;
    // Each stage's resolution: a spatial level halves it after each stage (not after the first
    // when firstDownsample is false); a temporal level halves its frames instead.
    const res: number[] = [];
    for (let s = 0, r = level.resolution; s < stages; s++) {
      res.push(r);
      if (level.kind !== 'temporal' && !(s === 0 && !level.firstDownsample)) r /= 2;
    }
    const rows = (s: number) => batch * level.stageFrames[s];
    const pixels = (s: number) => rows(s) * res[s] ** 2;
    const perStage = new Array<number>(stages).fill(0);
    const fieldsAt = (s: number): SizeField[] =>
      [
        batchField,
        { field: `${path}resolution`, value: level.resolution },
        { field: `${path}channels[${s}]`, value: level.channels[s] },
      ].sort((a, b) => unusual(b) - unusual(a));
    const levelSize = levelName(level.resolution, level.frames);
    const where = (s: number) => `stage ${s} at ${levelName(res[s], level.stageFrames[s])} of the ${levelSize} level`;
    const tensor = (what: string, shape: number[], fields: SizeField[]) => {
      const elements = product(shape);
      if (!largest || elements > largest.elements) largest = { what, shape, elements, bytes: elements * FLOAT, fields };
    };
    const feature = (s: number, width: number, what = 'activation') =>
      tensor(`${what} in ${where(s)}`, [rows(s), res[s], res[s], width], fieldsAt(s));
    const residual = (s: number, cin: number, cout: number) => {
      perStage[s] += pixels(s) * (cin + 5 * cout);
      feature(s, Math.max(cin, cout));
    };
    const attention = (s: number, width: number, field: SizeField) => {
      const n = res[s] ** 2;
      perStage[s] += pixels(s) * (12 * width + 2 * heads * (n + tokens) + (level.attentionFfn ? 10 * width : 0));
      tensor(
        `attention matrix in ${where(s)}`,
        [rows(s), heads, n, n],
        [field, batchField, { field: `${path}resolution`, value: level.resolution }],
      );
      if (level.attentionFfn) feature(s, 4 * width, 'feed-forward activation');
    };
    const temporalAttention = (s: number, width: number) => {
      perStage[s] += pixels(s) * (12 * width + 2 * (width / 32) * level.stageFrames[s]);
    };
    const blockAttention = (s: number, width: number, blocks: number) => {
      const field = { field: `${path}attentionLayers[${s}]`, value: level.attentionLayers[s] };
      for (let n = 0; n < blocks * level.attentionLayers[s]; n++) attention(s, width, field);
      for (let n = 0; n < blocks * level.temporalAttentionLayers[s]; n++) temporalAttention(s, width);
    };
    const ch = level.channels;
    const image = model.imageChannels * (level.index === 0 && model.lowResCondition ? 2 : 1);
    // Noisy input, noise, target, prediction, error (and the clean image) at this level's size; conv_in.
    perStage[0] += pixels(0) * (6 * image + ch[0]);
    const inputShape = [rows(0), res[0], res[0], image];
    if (!input || product(inputShape) > input.elements) {
      const fields = [
        batchField,
        { field: `${path}resolution`, value: level.resolution },
        { field: 'model.imageChannels', value: image },
      ]
        .sort((a, b) => unusual(b) - unusual(a))
        .filter((f, i) => i === 0 || f.field !== 'model.imageChannels');
      input = {
        what: `data batch of the ${levelName(level.resolution, level.frames)} level`,
        shape: inputShape,
        elements: product(inputShape),
        bytes: product(inputShape) * FLOAT,
        fields,
      };
    }
    let c = ch[0];
    const skips = [c];
    for (let s = 0; s < stages; s++) {
      for (let j = 0; j < level.resBlocks[s]; j++) {
        residual(s, c, ch[s]);
        c = ch[s];
        skips.push(c);
      }
      blockAttention(s, c, level.resBlocks[s]);
      if (s < stages - 1) {
        perStage[s + 1] += pixels(s + 1) * c;
        skips.push(c);
      }
    }
    if (level.midBlock) {
      const s = stages - 1;
      residual(s, c, c);
      attention(s, c, { field: `${path}midBlock`, value: 1 });
      residual(s, c, c);
    }
    const inner = levels.find((l) => l.index === level.index + 1);
    if (inner) perStage[stages - 1] += pixels(stages - 1) * (inner.channels[0] + c);
    for (let s = stages - 1; s >= 0; s--) {
      for (let j = 0; j <= level.resBlocks[s]; j++) {
        const cin = c + skips.pop()!;
        perStage[s] += pixels(s) * cin;
        residual(s, cin, ch[s]);
        c = ch[s];
      }
      blockAttention(s, c, level.resBlocks[s] + 1);
      if (s > 0) perStage[s - 1] += 2 * pixels(s - 1) * c;
    }
    perStage[0] += pixels(0) * (2 * c + image);
    perStage.forEach((n, s) => {
      floats += n;
      if (!heaviest || n * FLOAT > heaviest.bytes)
        heaviest = { where: where(s), bytes: n * FLOAT, fields: fieldsAt(s) };
    });
  }
  return { floats, input: input!, largest: largest!, heaviest: heaviest! };
}

/** `field = value (with field value, …)`: the field most responsible first. */
export function describeFields(fields: SizeField[]): string {
  const [first, ...rest] = fields;
  const others = rest.length ? ` (with ${rest.map((f) => `${f.field} ${f.value}`).join(', ')})` : '';
  return `${first.field} = ${first.value}${others}`;
}

/** `model preset cc12m-1024: ` when the model is a preset (its fields are the preset's). */
export function presetNote(config: MemoryPlanConfig): string {
  return typeof config.model === 'string' ? `model preset ${config.model}: ` : '';
}

export interface TensorCheckOptions {
  /** The bound, in float32 elements (default `MAX_TENSOR_ELEMENTS`). */
  maxElements?: number;
  /** Also bound the activations (they live in typed arrays or wasm memory: every backend but `tensorflow`). */
  activations?: boolean;
  /** Names the backend in the message about an activation. */
  backend?: string;
}

/**
 * Refuses a config whose training step would need a tensor that cannot exist (over
 * `MAX_TENSOR_ELEMENTS` float32 elements): a data batch or a parameter on any backend, and with
 * `activations` an activation too, naming the field responsible and the size. Cheap and
 * independent of the machine: `parseTrainConfig` runs it (without activations). Returns the plan.
 */
export function checkTensorSizes(
  config: MemoryPlanConfig,
  model: NestedUNetConfig,
  options: TensorCheckOptions = {},
): MemoryPlan {
  const max = options.maxElements ?? MAX_TENSOR_ELEMENTS;
  const plan = memoryPlan(config, model);
  for (const phase of plan.phases) {
    const kinds = [phase.largestInput, phase.largestParam, ...(options.activations ? [phase.largestActivation] : [])];
    const t = kinds.find((k) => k.elements > max);
    if (!t) continue;
    const holder =
      t === phase.largestActivation && options.backend ? `the ${options.backend} backend` : 'a JS typed array';
    throw new ConfigError(
      `config: ${presetNote(config)}${describeFields(t.fields)} needs a ${formatBytes(t.bytes)} tensor ` +
        `[${t.shape.join(', ')}] in phase ${phase.phase + 1}, the ${t.what}; ` +
        `${holder} holds at most ${formatBytes(max * FLOAT)} (${max.toLocaleString('en-US')} floats)`,
    );
  }
  return plan;
}

/** 481,000,000 → `481 M`. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${round(n / 1e9)} G`;
  if (n >= 1e6) return `${round(n / 1e6)} M`;
  if (n >= 1e3) return `${round(n / 1e3)} k`;
  return String(n);
}
