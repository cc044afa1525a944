import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@matryoshka-ts/backends';
import { CheckpointError, DataError } from '@matryoshka-ts/core';
import { findPython, seeded } from '@matryoshka-ts/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LPIPS_TAP_CHANNELS,
  Lpips,
  type LpipsStateDict,
  VGG_CONVS,
  lpipsParameterShapes,
  lpipsStateDictFromOnnx,
  unitNormalize,
} from './lpips.js';
import { type TestNode, type TestTensor, onnxTestModel } from './onnx-test-writer.js';
import { parseOnnxModel } from './onnx-weights.js';

// ---------------------------------------------------------------- a synthetic LPIPS export

/**
 * How the synthetic file stores some parameters, to cover what exporters write: other tensors
 * are float32 raw_data. `double` values are not float32-representable, so reading must round.
 */
const ENCODINGS: Record<string, Pick<TestTensor, 'type' | 'encoding'>> = {
  'net.slice1.0.weight': { encoding: 'packed' },
  'net.slice1.2.bias': { encoding: 'unpacked' },
  'net.slice2.5.bias': { type: 'double' },
  'net.slice3.10.bias': { type: 'double', encoding: 'packed' },
  'lin0.model.1.weight': { type: 'double', encoding: 'unpacked' },
  'lin1.model.1.weight': { encoding: 'packed' },
};
/** Stored as a Constant node's value instead of an initializer. */
const CONSTANT_BIAS = 'net.slice2.7.bias';

interface SyntheticExport {
  nodes: TestNode[];
  initializers: TestTensor[];
  /** The values a reader must return, float32, under lpips's names. */
  dict: LpipsStateDict;
  /** The initializer name of each parameter. */
  onnxNames: Map<string, string>;
}

/**
 * Random LPIPS weights of the real shapes, in the graph `torch.onnx.export` makes of lpips.LPIPS:
 * scaling of both inputs, VGG run on x then on y with the same weights (some reached through
 * Identity nodes), then per tap the normalisation, the bias-free lin Conv and the spatial mean.
 * VGG weights are He-uniform so activations keep their scale through 13 layers.
 */
function syntheticExport(seed: number): SyntheticExport {
  const rand = seeded(seed);
  const uniform = (n: number, lo: number, hi: number) =>
    Float64Array.from({ length: n }, () => lo + (hi - lo) * rand());
  const dict: LpipsStateDict = new Map();
  const onnxNames = new Map<string, string>();
  const initializers: TestTensor[] = [];
  const nodes: TestNode[] = [];
  let folded = 100;
  const store = (name: string, shape: number[], values: Float64Array) => {
    const spec = ENCODINGS[name] ?? {};
    const double = spec.type === 'double';
    // float32 parameters are drawn as float32; float64 ones keep digits float32 lacks.
    const stored = double ? values : Float32Array.from(values);
    dict.set(name, { shape, data: Float32Array.from(stored) });
    // Half the names as torch keeps them, half as constant folding renames them.
    const onnxName = folded++ % 2 ? `onnx::Conv_${folded}` : name;
    onnxNames.set(name, onnxName);
    const tensor: TestTensor = { name: onnxName, dims: shape, values: stored, ...spec };
    if (name === CONSTANT_BIAS)
      nodes.push({ op: 'Constant', inputs: [], outputs: [onnxName], value: { ...tensor, name: '' } });
    else initializers.push(tensor);
  };
  for (const c of VGG_CONVS) {
    const bound = Math.sqrt(6 / (9 * c.cin));
    store(`${c.name}.weight`, [c.cout, c.cin, 3, 3], uniform(9 * c.cin * c.cout, -bound, bound));
    store(`${c.name}.bias`, [c.cout], uniform(c.cout, -0.1, 0.1));
  }
  LPIPS_TAP_CHANNELS.forEach((ch, k) => store(`lin${k}.model.1.weight`, [1, ch, 1, 1], uniform(ch, 0, 2 / ch)));

  initializers.push(
    { name: 'shift', dims: [1, 3, 1, 1], values: [-0.03, -0.088, -0.188] },
    { name: 'scale', dims: [1, 3, 1, 1], values: [0.458, 0.448, 0.45] },
    { name: 'onnx::ReduceSum_axes', dims: [1], values: [1], type: 'int64' },
    { name: 'eps', dims: [], values: [1e-10] },
    { name: 'onnx::Reshape_shape', dims: [1], values: [-1], type: 'int64' },
  );
  const taps: string[][] = [];
  for (const input of ['in0', 'in1']) {
    nodes.push({ op: 'Sub', inputs: [input, 'shift'], outputs: [`${input}_s`] });
    nodes.push({ op: 'Div', inputs: [`${input}_s`, 'scale'], outputs: [`${input}_h`] });
    let h = `${input}_h`;
    const tapsOf: string[] = [];
    VGG_CONVS.forEach((c, i) => {
      if (i > 0 && c.slice !== VGG_CONVS[i - 1].slice) {
        tapsOf.push(h);
        nodes.push({ op: 'MaxPool', inputs: [h], outputs: [`${h}_pool`] });
        h = `${h}_pool`;
      }
      let weight = onnxNames.get(`${c.name}.weight`)!;
      if (input === 'in1' && i % 3 === 0) {
        // What exporters emit for a weight used twice.
        nodes.push({ op: 'Identity', inputs: [weight], outputs: [`${weight}_tied`] });
        weight = `${weight}_tied`;
      }
      nodes.push({ op: 'Conv', inputs: [h, weight, onnxNames.get(`${c.name}.bias`)!], outputs: [`${input}_conv${i}`] });
      nodes.push({ op: 'Relu', inputs: [`${input}_conv${i}`], outputs: [`${input}_relu${i}`] });
      h = `${input}_relu${i}`;
    });
    tapsOf.push(h);
    taps.push(tapsOf);
  }
  const terms = LPIPS_TAP_CHANNELS.map((_, k) => {
    const normed = taps.map((tapsOf, p) => {
      const t = tapsOf[k];
      nodes.push({ op: 'Mul', inputs: [t, t], outputs: [`sq${k}_${p}`] });
      nodes.push({ op: 'ReduceSum', inputs: [`sq${k}_${p}`, 'onnx::ReduceSum_axes'], outputs: [`ss${k}_${p}`] });
      nodes.push({ op: 'Sqrt', inputs: [`ss${k}_${p}`], outputs: [`nrm${k}_${p}`] });
      nodes.push({ op: 'Add', inputs: [`nrm${k}_${p}`, 'eps'], outputs: [`den${k}_${p}`] });
      nodes.push({ op: 'Div', inputs: [t, `den${k}_${p}`], outputs: [`n${k}_${p}`] });
      return `n${k}_${p}`;
    });
    nodes.push({ op: 'Sub', inputs: normed, outputs: [`d${k}`] });
    nodes.push({ op: 'Mul', inputs: [`d${k}`, `d${k}`], outputs: [`d2${k}`] });
    nodes.push({ op: 'Conv', inputs: [`d2${k}`, onnxNames.get(`lin${k}.model.1.weight`)!], outputs: [`lin${k}`] });
    nodes.push({ op: 'ReduceMean', inputs: [`lin${k}`], outputs: [`res${k}`] });
    return `res${k}`;
  });
  let sum = terms[0];
  for (const t of terms.slice(1)) {
    nodes.push({ op: 'Add', inputs: [sum, t], outputs: [`${sum}+${t}`] });
    sum = `${sum}+${t}`;
  }
  nodes.push({ op: 'Reshape', inputs: [sum, 'onnx::Reshape_shape'], outputs: ['distance'] });
  return { nodes, initializers, dict, onnxNames };
}

function randomImages(rand: () => number, shape: number[], around?: Float32Array, spread = 1): tf.Tensor4D {
  const size = shape.reduce((n, d) => n * d, 1);
  const values = Float32Array.from({ length: size }, (_, i) => {
    const v = (around?.[i] ?? 0) + spread * (2 * rand() - 1);
    return Math.max(-1, Math.min(1, v));
  });
  return tf.tensor4d(values, shape as [number, number, number, number]);
}

// ---------------------------------------------------------------- tests

// 16×16 is the smallest input VGG's four pools allow: the test cost is the 13 full-width convs.
const SHAPE = [2, 16, 16, 3];

describe('LPIPS from a synthetic ONNX export (wasm)', () => {
  let synthetic: SyntheticExport;
  let bytes: Uint8Array;
  let lpips: Lpips;
  let x: tf.Tensor4D;
  let y: tf.Tensor4D;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    synthetic = syntheticExport(7);
    bytes = onnxTestModel(synthetic.nodes, synthetic.initializers);
    lpips = Lpips.fromOnnxBytes(bytes, 'synthetic.onnx');
    const rand = seeded(11);
    x = randomImages(rand, SHAPE);
    // A reconstruction: near x, as in the autoencoder loss.
    y = randomImages(rand, SHAPE, x.dataSync() as Float32Array, 0.2);
  });

  afterAll(() => {
    lpips?.dispose();
    x?.dispose();
    y?.dispose();
  });

  it('maps the Conv nodes in order to exactly the stored weights, whatever their names', () => {
    const dict = lpipsStateDictFromOnnx(parseOnnxModel(bytes), 'synthetic.onnx');
    expect([...dict.keys()].sort()).toEqual([...lpipsParameterShapes().keys()].sort());
    for (const [name, want] of synthetic.dict) {
      const got = dict.get(name)!;
      expect(got.shape, name).toEqual(want.shape);
      // Bytewise: a deep toEqual over 14.7M floats takes minutes.
      const same = Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(
        Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength),
      );
      expect(same, name).toBe(true);
    }
  });

  it('is 0 for identical images and symmetric', () => {
    const [same, xy, yx] = [lpips.distance(x, x), lpips.distance(x, y), lpips.distance(y, x)];
    const d = xy.arraySync();
    expect(d.every((v) => v > 0)).toBe(true);
    // The two VGG passes see bit-identical inputs, so equal features give exactly 0.
    expect(same.arraySync()).toEqual([0, 0]);
    // (a − b)² = (b − a)² exactly, and each sample's features do not depend on batch position.
    yx.arraySync().forEach((v, i) => expect(Math.abs(v - d[i])).toBeLessThanOrEqual(1e-6 * d[i]));
    tf.dispose([same, xy, yx]);
  });

  it('has a finite zero gradient at y = x', () => {
    const g = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(lpips.distance(x, v as tf.Tensor4D)))(x));
    const values = g.dataSync();
    g.dispose();
    expect(values.every((v) => v === 0)).toBe(true);
  });

  it('rejects inputs of the wrong shape', () => {
    const small = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    const gray = tf.zeros([1, 16, 16, 1]) as tf.Tensor4D;
    expect(() => lpips.distance(small, small)).toThrow(/at least 16×16 px, got 8×8/);
    expect(() => lpips.distance(gray, gray)).toThrow(DataError);
    expect(() => lpips.distance(x, tf.slice(x, 0, 1) as tf.Tensor4D)).toThrow(/one shape/);
    tf.dispose([small, gray]);
  });

  it('leaks no tensors; dispose frees the 31 weights', () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      tf.dispose(lpips.distance(x, y));
      tf.dispose(tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(lpips.distance(x, v as tf.Tensor4D)))(y)));
    }
    expect(tf.memory().numTensors).toBe(before);
    const other = Lpips.fromStateDict(synthetic.dict);
    expect(tf.memory().numTensors).toBe(before + 31);
    other.dispose();
    other.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(before);
    expect(() => other.distance(x, y)).toThrow(/after dispose/);
  });

  it('lists every shape mismatch', () => {
    const wrong = synthetic.initializers.map((t) => {
      const name = t.name;
      // Same size, wrong shape.
      if (name === synthetic.onnxNames.get('net.slice2.5.weight')) return { ...t, dims: [128, 64, 1, 9] };
      if (name === synthetic.onnxNames.get('lin3.model.1.weight')) return { ...t, dims: [1, 256, 1, 2] };
      return t;
    });
    const graph = parseOnnxModel(onnxTestModel(synthetic.nodes, wrong));
    const error = (() => {
      try {
        lpipsStateDictFromOnnx(graph, 'bad.onnx');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error?.message).toContain('bad.onnx does not hold LPIPS VGG (v0.1) weights');
    expect(error?.message).toMatch(
      /net\.slice2\.5\.weight \(ONNX '.*'\): expected \[128, 64, 3, 3\], found \[128, 64, 1, 9\]/,
    );
    expect(error?.message).toMatch(
      /lin3\.model\.1\.weight \(ONNX '.*'\): expected \[1, 512, 1, 1\], found \[1, 256, 1, 2\]/,
    );
  });

  it('reports missing convolutions and negative lin weights', () => {
    const noLin = synthetic.nodes.filter((n) => !(n.op === 'Conv' && n.inputs.length === 2 && n.outputs[0] === 'lin4'));
    expect(() => lpipsStateDictFromOnnx(parseOnnxModel(onnxTestModel(noLin, synthetic.initializers)))).toThrow(
      /4 distinct convolutions without a bias, where LPIPS has 5 lin layers/,
    );
    const linName = synthetic.onnxNames.get('lin2.model.1.weight');
    const negative = synthetic.initializers.map((t) =>
      t.name === linName ? { ...t, values: Array.from(t.values, (v) => -v) } : t,
    );
    expect(() => lpipsStateDictFromOnnx(parseOnnxModel(onnxTestModel(synthetic.nodes, negative)))).toThrow(
      /lin2\.model\.1\.weight \(ONNX '.*'\): has negative weights/,
    );
  });

  describe('against a float64 numpy implementation', () => {
    const python = findPython(['numpy']);
    const skip = python ? '' : ' [skipped: python3 with numpy not found]';
    // Coordinates [b, h, w, c] of y: corners, edges (zero padding) and the interior.
    const coords = [
      [0, 0, 0, 0],
      [0, 7, 8, 1],
      [1, 15, 5, 2],
      [1, 4, 15, 0],
      [0, 11, 9, 2],
    ];
    /**
     * Central-difference step in float64: the truncation error O(h²·f''') is ~1e-12 and the
     * rounding error ~ε·|f|/h ≈ 1e-10, both far below the per-pixel gradients (~1e-4 … 1e-2).
     * A ReLU or max-pool switching inside ±h moves the quotient by that one unit's share only.
     */
    const STEP = 1e-6;
    let reference: { distance: number[]; grad: number[] } | undefined;
    let dir: string;

    beforeAll(() => {
      if (!python) return;
      dir = mkdtempSync(join(tmpdir(), 'lpips-ref-'));
      const tensors: { name: string; shape: number[]; offset: number }[] = [];
      const chunks: Float32Array[] = [];
      let offset = 0;
      const add = (name: string, shape: number[], data: Float32Array) => {
        tensors.push({ name, shape, offset });
        chunks.push(data);
        offset += data.length;
      };
      for (const [name, t] of synthetic.dict) add(name, t.shape, t.data);
      add('x', SHAPE, x.dataSync() as Float32Array);
      add('y', SHAPE, y.dataSync() as Float32Array);
      const all = new Float32Array(offset);
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      writeFileSync(join(dir, 'tensors.bin'), new Uint8Array(all.buffer));
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ tensors, coords, step: STEP }));
      const script = fileURLToPath(new URL('./lpips-reference.py', import.meta.url));
      const run = spawnSync(python, [script, join(dir, 'manifest.json'), join(dir, 'tensors.bin')], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      if (run.status !== 0) throw new Error(`numpy reference failed: ${run.stderr}`);
      reference = JSON.parse(run.stdout);
    });

    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it.skipIf(!python)(`gives the same distances${skip}`, () => {
      const d = lpips.distance(x, y);
      const got = d.arraySync();
      d.dispose();
      // float32 through 13 convolutions (sums of up to 4608 products, ~√K·ε ≈ 4e-6 relative
      // each) then the normalisation: ~1e-5 relative observed; 1e-4 leaves a margin of ~10.
      got.forEach((v, i) =>
        expect(Math.abs(v - reference!.distance[i])).toBeLessThanOrEqual(1e-4 * reference!.distance[i]),
      );
    });

    it.skipIf(!python)(`has gradients in y that match float64 central differences${skip}`, () => {
      const g = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(lpips.distance(x, v as tf.Tensor4D)))(y));
      const grad = g.arraySync() as number[][][][];
      const scale = (g.dataSync() as Float32Array).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      g.dispose();
      coords.forEach(([b, h, w, c], i) => {
        const want = reference!.grad[i];
        // float32 backprop errors scale with the largest gradient entries, not with each one.
        expect(Math.abs(grad[b][h][w][c] - want), `at ${[b, h, w, c]}`).toBeLessThanOrEqual(2e-3 * scale);
      });
    });
  });
});

describe('unitNormalize', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu', quiet: true });
  });

  it('divides by the channel norm + 1e-10, with a finite gradient where features are all zero', () => {
    const x = tf.tensor4d([3, 4, 0, 0, 0, 0], [1, 1, 2, 3]);
    const n = unitNormalize(x);
    expect(Array.from(n.dataSync())).toEqual([0.6, 0.8, 0, 0, 0, 0].map((v) => Math.fround(v)));
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(unitNormalize(v as tf.Tensor4D), [1, 2, 3])))(x);
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, n, g]);
  });
});
