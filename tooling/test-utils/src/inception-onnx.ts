import { ONNX_FLOAT, type OnnxInitializer, type OnnxNode, onnxModel } from './onnx-model.js';
import { seeded } from './random.js';

export interface InceptionOnnxOptions {
  /** Every layer's channel count times this (default 1: the real network, 23.8M weights). */
  widthScale?: number;
  /** Seed of the random weights (default 1). */
  seed?: number;
}

/**
 * An ONNX InceptionV3 with pytorch-fid's FID layout (FIDInceptionA/C/E blocks: average pools
 * without padding in the count, a max pool in the last block) and RANDOM weights: input `images`
 * [N, 3, 299, 299] in [0, 1] (scaled to [−1, 1] inside, as pytorch-fid's normalize_input does),
 * output `pool3` [N, 2048·widthScale] after the global average pool. Each BasicConv2d's
 * batch norm is folded into its convolution's bias. It has the real network's shape and cost
 * (5.7 GFLOPs per image at widthScale 1), so it times FID feature extraction where the real
 * weights are absent; its features are meaningless. widthScale < 1 makes small test networks
 * with the same layers.
 */
export function inceptionV3Onnx(options: InceptionOnnxOptions = {}): Uint8Array {
  const scale = options.widthScale ?? 1;
  const u = seeded(options.seed ?? 1);
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  let id = 0;
  const width = (c: number) => Math.max(1, Math.round(c * scale));
  // Channels of each named tensor, so blocks know their inputs' widths.
  const channels = new Map<string, number>([['x', 3]]);

  /** Conv (He-initialised, so activations keep their scale through the depth) + bias + ReLU. */
  const conv = (
    input: string,
    outChannels: number,
    kernel: [number, number],
    o: { stride?: number; pad?: [number, number] } = {},
  ): string => {
    const name = `conv${id++}`;
    const cin = channels.get(input)!;
    const cout = width(outChannels);
    const fanIn = cin * kernel[0] * kernel[1];
    const std = Math.sqrt(2 / fanIn);
    // Uniform with the Gaussian's standard deviation: √3·std·(2u − 1).
    const w = Float32Array.from({ length: cout * fanIn }, () => Math.sqrt(3) * std * (2 * u() - 1));
    const b = Float32Array.from({ length: cout }, () => 0.1 * (u() - 0.5));
    initializers.push({ name: `${name}.w`, dims: [cout, cin, ...kernel], data: w });
    initializers.push({ name: `${name}.b`, dims: [cout], data: b });
    const [ph, pw] = o.pad ?? [0, 0];
    const s = o.stride ?? 1;
    nodes.push({
      op: 'Conv',
      inputs: [input, `${name}.w`, `${name}.b`],
      outputs: [`${name}.c`],
      attributes: { kernel_shape: kernel, strides: [s, s], pads: [ph, pw, ph, pw] },
    });
    nodes.push({ op: 'Relu', inputs: [`${name}.c`], outputs: [name] });
    channels.set(name, cout);
    return name;
  };
  const pool = (input: string, kind: 'MaxPool' | 'AveragePool', stride: number, pad: number): string => {
    const name = `pl${id++}`;
    // AveragePool's count_include_pad defaults to 0: pytorch-fid's FID blocks count no padding.
    nodes.push({
      op: kind,
      inputs: [input],
      outputs: [name],
      attributes: { kernel_shape: [3, 3], strides: [stride, stride], pads: [pad, pad, pad, pad] },
    });
    channels.set(name, channels.get(input)!);
    return name;
  };
  const concat = (inputs: string[]): string => {
    const name = `cat${id++}`;
    nodes.push({ op: 'Concat', inputs, outputs: [name], attributes: { axis: 1 } });
    channels.set(
      name,
      inputs.reduce((n, x) => n + channels.get(x)!, 0),
    );
    return name;
  };

  const blockA = (x: string, poolFeatures: number) =>
    concat([
      conv(x, 64, [1, 1]),
      conv(conv(x, 48, [1, 1]), 64, [5, 5], { pad: [2, 2] }),
      conv(conv(conv(x, 64, [1, 1]), 96, [3, 3], { pad: [1, 1] }), 96, [3, 3], { pad: [1, 1] }),
      conv(pool(x, 'AveragePool', 1, 1), poolFeatures, [1, 1]),
    ]);
  const blockB = (x: string) =>
    concat([
      conv(x, 384, [3, 3], { stride: 2 }),
      conv(conv(conv(x, 64, [1, 1]), 96, [3, 3], { pad: [1, 1] }), 96, [3, 3], { stride: 2 }),
      pool(x, 'MaxPool', 2, 0),
    ]);
  const row = (x: string, c: number) => conv(x, c, [1, 7], { pad: [0, 3] });
  const col = (x: string, c: number) => conv(x, c, [7, 1], { pad: [3, 0] });
  const blockC = (x: string, c7: number) =>
    concat([
      conv(x, 192, [1, 1]),
      col(row(conv(x, c7, [1, 1]), c7), 192),
      row(col(row(col(conv(x, c7, [1, 1]), c7), c7), c7), 192),
      conv(pool(x, 'AveragePool', 1, 1), 192, [1, 1]),
    ]);
  const blockD = (x: string) =>
    concat([
      conv(conv(x, 192, [1, 1]), 320, [3, 3], { stride: 2 }),
      conv(col(row(conv(x, 192, [1, 1]), 192), 192), 192, [3, 3], { stride: 2 }),
      pool(x, 'MaxPool', 2, 0),
    ]);
  const split = (x: string) => concat([conv(x, 384, [1, 3], { pad: [0, 1] }), conv(x, 384, [3, 1], { pad: [1, 0] })]);
  const blockE = (x: string, last: boolean) =>
    concat([
      conv(x, 320, [1, 1]),
      split(conv(x, 384, [1, 1])),
      split(conv(conv(x, 448, [1, 1]), 384, [3, 3], { pad: [1, 1] })),
      conv(last ? pool(x, 'MaxPool', 1, 1) : pool(x, 'AveragePool', 1, 1), 192, [1, 1]),
    ]);

  // pytorch-fid's normalize_input: 2x − 1.
  initializers.push({ name: 'two', dims: [], data: [2] }, { name: 'one', dims: [], data: [1] });
  nodes.push({ op: 'Mul', inputs: ['images', 'two'], outputs: ['x2'] });
  nodes.push({ op: 'Sub', inputs: ['x2', 'one'], outputs: ['x'] });
  let h = conv('x', 32, [3, 3], { stride: 2 });
  h = conv(h, 32, [3, 3]);
  h = conv(h, 64, [3, 3], { pad: [1, 1] });
  h = pool(h, 'MaxPool', 2, 0);
  h = conv(h, 80, [1, 1]);
  h = conv(h, 192, [3, 3]);
  h = pool(h, 'MaxPool', 2, 0);
  h = blockA(h, 32);
  h = blockA(h, 64);
  h = blockA(h, 64);
  h = blockB(h);
  for (const c7 of [128, 160, 160, 192]) h = blockC(h, c7);
  h = blockD(h);
  h = blockE(h, false);
  h = blockE(h, true);
  nodes.push({ op: 'GlobalAveragePool', inputs: [h], outputs: ['gap'] });
  nodes.push({ op: 'Flatten', inputs: ['gap'], outputs: ['pool3'], attributes: { axis: 1 } });
  return onnxModel({
    inputs: [{ name: 'images', type: ONNX_FLOAT, shape: ['n', 3, 299, 299] }],
    outputs: [{ name: 'pool3', type: ONNX_FLOAT, shape: ['n', channels.get(h)!] }],
    initializers,
    nodes,
  });
}
