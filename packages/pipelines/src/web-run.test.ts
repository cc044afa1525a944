import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { encodeSafetensors } from '@matryoshka-ts/checkpoint/bytes';
import { CheckpointError, ConfigError } from '@matryoshka-ts/core';
import { NestedUNet, paramsFrom } from '@matryoshka-ts/nested-unet';
import { HashedWordEncoder } from '@matryoshka-ts/text-encoders/browser';
import { type TrainConfig, levelSchedulesOf, modelConfigOf, parseTrainConfig } from './config.js';
import { generate } from './generate.js';
import { phaseModelConfig } from './phases.js';
import { TRAIN_PRESETS } from './train-presets.js';
import { type WebRunManifest, openWebRun, parseWebRunManifest, webExportProblem } from './web-run.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const config = parseTrainConfig(TRAIN_PRESETS.micro);

/** What `mdm-train export --web` writes for `model`, as the page fetches it. */
function exported(model: NestedUNet, from = 0, drop?: string, extra?: string) {
  const tensors = new Map(
    [...model.params].map(([name, v]) => [name, { dtype: 'F32' as const, shape: v.shape, data: v.dataSync() }]),
  );
  if (drop) tensors.delete(drop);
  if (extra) tensors.set(extra, { dtype: 'F32', shape: [1], data: new Float32Array(1) });
  const manifest: WebRunManifest = {
    format: 'matryoshka-ts/web-run',
    version: 1,
    config: 'config.json',
    weights: 'weights.safetensors',
    step: 6,
    phase: from === 0 ? 1 : 0,
    from,
    ema: true,
    levels: model.levels.map((l) => ({ ...l })),
    conditioning: { kind: 'text', encoder: { kind: 'hashed-words', width: 16, maxTokens: 4 } },
    sampling: { steps: 2, sampler: 'ddpm', eta: 0, guidance: 3, threshold: 'dynamic' },
    prompts: ['grinning face'],
  };
  // JSON as fetched; the weights as an ArrayBuffer (`response.arrayBuffer()`).
  const weights = encodeSafetensors(tensors).slice().buffer;
  return { manifest: JSON.parse(JSON.stringify(manifest)), config: JSON.parse(JSON.stringify(config)), weights };
}

const options = {
  captions: ['grinning face'],
  labels: [0],
  steps: 3,
  sampler: 'ddpm' as const,
  eta: 0,
  guidance: 3,
  threshold: 'dynamic' as const,
  seed: 5,
};

describe('openWebRun', () => {
  it('samples an exported model as generate does with the model itself', async () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 1 });
    const run = openWebRun({ ...exported(model), source: 'https://example.org/run' });
    expect(run.levels.map((l) => l.resolution)).toEqual([8, 4]);
    const conditioner = { kind: 'text' as const, encoder: new HashedWordEncoder({ width: 16, maxTokens: 4 }) };
    const want = await generate(model, paramsFrom(model.params), levelSchedulesOf(config), conditioner, {
      ...options,
      prediction: config.loss.prediction,
    });
    const got = await run.generate(options);
    expect(got.map((l) => l.images[0])).toEqual(want.map((l) => l.images[0]));
    run.dispose();
    model.dispose();
  });

  it("opens a checkpoint of an earlier phase as that phase's model and schedules", async () => {
    const inner = new NestedUNet(phaseModelConfig(modelConfigOf(config), 1), { seed: 2 });
    const run = openWebRun(exported(inner, 1));
    expect(run.levels.map((l) => l.resolution)).toEqual([4]);
    // The 4 px level's own (unshifted) schedule; schedules hold functions, compared by their fields.
    expect(JSON.stringify(run.schedules)).toBe(JSON.stringify(levelSchedulesOf(config).slice(1)));
    expect((await run.generate(options))[0].images[0]).toHaveLength(4 * 4 * 3);
    run.dispose();
    inner.dispose();
  });

  it('refuses weights that do not fit the model, naming the tensor and the file', () => {
    const model = new NestedUNet(modelConfigOf(config), { seed: 1 });
    const name = [...model.params.keys()][3];
    const source = 'https://example.org/run';
    expect(() => openWebRun({ ...exported(model, 0, name), source })).toThrow(
      new CheckpointError(`${source}/weights.safetensors: no weights for '${name}'`),
    );
    expect(() => openWebRun({ ...exported(model, 0, undefined, 'stray.weight'), source })).toThrow(
      /weights\.safetensors: 1 tensors the model does not have \(stray\.weight\)/,
    );
    const bytes = new Uint8Array(exported(model).weights);
    bytes[bytes.length - 1] ^= 1;
    expect(() => openWebRun({ ...exported(model), weights: bytes, source })).toThrow(/checksum mismatch/);
    model.dispose();
  });
});

describe('the web run manifest', () => {
  it('refuses anything but an exported run, naming the file and the field', () => {
    expect(() => parseWebRunManifest({ format: 'something else' }, 'run/web-run.json')).toThrow(ConfigError);
    expect(() => parseWebRunManifest({ format: 'something else' }, 'run/web-run.json')).toThrow(
      /^run\/web-run\.json: not a web run exported by `mdm-train export --web` \(format: /,
    );
  });

  it('says which runs a page cannot sample', () => {
    expect(webExportProblem(config)).toBeUndefined();
    const onnx = parseTrainConfig({
      ...TRAIN_PRESETS.micro,
      conditioning: { kind: 'text', encoder: { kind: 'onnx', path: 'flan-t5', width: 16 } },
    });
    expect(webExportProblem(onnx)).toMatch(/ONNX export \(flan-t5\); a web page runs the hashed-word encoder only/);
    const cascaded = parseTrainConfig(TRAIN_PRESETS['cascaded-tiny']);
    expect(webExportProblem(cascaded)).toMatch(/^a cascaded run samples through several models/);
    const stage = { ...config, stage: { kind: 'upsampler', baseResolution: 4, augLevel: 100 } } as TrainConfig;
    expect(webExportProblem(stage)).toBe('this is one stage of a cascaded run');
  });
});
