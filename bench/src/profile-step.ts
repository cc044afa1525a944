// Per-kernel profile of one training step (forward, loss, backward, Adam) of a training preset's
// model, grouped into the categories of docs/performance.md. A profile, not a test:
//   pnpm bench:profile <backend=native> [batch=8] [preset=emoji] [phase=last | sample]
// `sample` profiles one DDPM sampling step of the full model instead (as `pnpm bench` times it).
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@matryoshka-ts/core';
import { type BackendName, initBackend } from '@matryoshka-ts/backends';
import { NestedUNet, type NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import {
  TRAIN_PRESETS,
  levelSchedulesOf,
  levelsOf,
  modelConfigOf,
  parseTrainConfig,
  phaseModelConfig,
} from '@matryoshka-ts/pipelines';
import { networkDenoiser, sampleStep } from '@matryoshka-ts/samplers';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders';
import { benchTrainStep } from './bench-step.js';
import type { StepGradients } from '@matryoshka-ts/pipelines';

const backend = (process.argv[2] ?? 'native') as BackendName;
const B = Number(process.argv[3] ?? 8);
const info = await initBackend({ backend, quiet: true });
const presetName = process.argv[4] ?? 'emoji';
const train = parseTrainConfig(TRAIN_PRESETS[presetName]);
const sampling = process.argv[5] === 'sample';
const phaseIndex = sampling || process.argv[5] === undefined ? train.phases.length - 1 : Number(process.argv[5]);
const full = modelConfigOf(train);
const from = levelsOf(full).findIndex((l) => l.resolution === train.phases[phaseIndex].resolution);
const config: NestedUNetConfig = phaseModelConfig(full, from);
const model = new NestedUNet(config, { seed: 1 });
const levels = model.config.levels;
const schedules = levelSchedulesOf(train).slice(from);
const rng = new Rng(1);
const images = tf.clipByValue(
  rng.normalTensor([B, levels[0].resolution, levels[0].resolution, 3]),
  -1,
  1,
) as tf.Tensor4D;
const { tokens, mask } = new HashedWordEncoder(train.conditioning.encoder).encode(
  new Array(B).fill('grinning face with big eyes'),
);
const step = benchTrainStep(model, schedules);
/** Forward, loss and backward; returns the gradients (the step's first half). */
const forwardBackward = () => step.computeGradients(images, { tokens, mask }, rng);
/** The update: Adam (the step's second half); frees the gradients. */
const update = async (grads: StepGradients) => {
  await step.update(grads);
};
const noise = levels.map((l) => rng.normalTensor([B, l.resolution, l.resolution, 3]) as tf.Tensor4D);
const denoiser = networkDenoiser((x, times) => model.forward({ x, times, tokens, mask }));
/** One DDPM step of all levels; returns its outputs (read back, as the sampler would). */
const sample = () => {
  const next = sampleStep(denoiser, noise, 600, 596, { schedules, sampler: 'ddpm', rng });
  next.forEach((t) => t.dataSync());
  return next;
};
if (sampling)
  tf.dispose(sample()); // warm-up
else await update(await forwardBackward());
const t0 = performance.now();
if (sampling) tf.dispose(sample());
else await update(await forwardBackward());
const wallMs = performance.now() - t0;

// Which category each kernel belongs to.
const CATEGORY: [RegExp, string][] = [
  [/^(Conv2D|MdmConv2DBias)$/, 'conv forward'],
  [/^(Conv2DBackprop|MdmConv2DBiasFilterGrad)/, 'conv gradients'],
  [/MatMul/, 'matmul'],
  [/GroupNorm/, 'GroupNorm (fused)'],
  [
    new RegExp(
      '^(Identity|Reshape|Cast|Slice|StridedSlice|Concat|SplitV|Pack|Unpack|Transpose|PadV2|Reverse|Tile|Fill|' +
        'ZerosLike|OnesLike|GatherV2)$',
    ),
    'tensor bookkeeping (copies, reshapes, slices)',
  ],
];
const categories = new Map<string, number>();
const kernels = new Map<string, { ms: number; n: number }>();
let grads: StepGradients | undefined;
// tf.profile returns the engine's one profile object: copy the kernel list before profiling again.
const fb = [
  ...(
    await tf.profile(async () => {
      if (sampling) return sample();
      grads = await forwardBackward();
      return [...grads.grads.values()];
    })
  ).kernels,
];
const ad = sampling ? [] : [...(await tf.profile(() => update(grads!))).kernels];
let total = 0;
for (const [prof, inAdam] of [
  [fb, false],
  [ad, true],
] as const)
  for (const k of prof) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const kk = kernels.get(k.name) ?? { ms: 0, n: 0 };
    kk.ms += ms;
    kk.n += 1;
    kernels.set(k.name, kk);
    const cat = inAdam
      ? 'optimizer update (Adam, tfjs ops)'
      : (CATEGORY.find(([re]) => re.test(k.name))?.[1] ?? 'elementwise and reductions');
    categories.set(cat, (categories.get(cat) ?? 0) + ms);
    total++;
  }
const kernelMs = [...categories.values()].reduce((a, b) => a + b, 0);
console.log(
  `${info.description}; preset ${presetName} phase ${phaseIndex + 1} ` +
    `(${levels.map((l) => l.resolution).join('→')} px), batch ${B}`,
);
console.log(
  `wall ${wallMs.toFixed(0)} ms per ${sampling ? 'sampling' : 'training'} step; ` +
    `kernels ${kernelMs.toFixed(0)} ms in ${total} kernel calls; ` +
    `the rest (${Math.max(0, wallMs - kernelMs).toFixed(0)} ms) is JavaScript: the tape, tensor bookkeeping, dispatch`,
);
console.log('| category | ms | share of kernel time |\n|---|---:|---:|');
for (const [cat, ms] of [...categories].sort((a, b) => b[1] - a[1]))
  console.log(`| ${cat} | ${ms.toFixed(0)} | ${((100 * ms) / kernelMs).toFixed(0)}% |`);
console.log('\ntop kernels:\n| kernel | ms | calls |\n|---|---:|---:|');
for (const [name, a] of [...kernels].sort((p, q) => q[1].ms - p[1].ms).slice(0, 12))
  console.log(`| ${name} | ${a.ms.toFixed(0)} | ${a.n} |`);

// MDM_PROFILE_SHAPES=1: the costliest (kernel, input shapes) pairs, to see which layers a category's time is in.
if (process.env.MDM_PROFILE_SHAPES) {
  const byShape = new Map<string, { ms: number; n: number }>();
  for (const k of [...fb, ...ad]) {
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join(' ')}`;
    const e = byShape.get(key) ?? { ms: 0, n: 0 };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.n += 1;
    byShape.set(key, e);
  }
  console.log('\ncostliest kernels by input shapes:\n| kernel and inputs | ms | calls |\n|---|---:|---:|');
  for (const [key, a] of [...byShape].sort((p, q) => q[1].ms - p[1].ms).slice(0, 25))
    console.log(`| ${key} | ${a.ms.toFixed(1)} | ${a.n} |`);
}
