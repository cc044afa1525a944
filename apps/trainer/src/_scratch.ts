import * as tf from '@tensorflow/tfjs-core';
import { initBackend, Rng } from '@matryoshka-ts/core';
import { NestedUNet, type NestedUNetConfig, countParams } from '@matryoshka-ts/nested-unet';

const backend = (process.argv[2] ?? 'wasm') as 'wasm' | 'cpu';
const B = Number(process.argv[3] ?? 16);
await initBackend({ backend });
const inner16 = { resolution: 16, channels: [64, 96], resBlocks: [1, 1], attentionLayers: [0, 1], groups: 16, timeEmbedDim: 128 };
const mid32 = { resolution: 32, channels: [32, 64], resBlocks: [1, 1], groups: 8, timeEmbedDim: 128, inner: inner16 };
const top64 = { resolution: 64, channels: [16, 32], resBlocks: [1, 1], groups: 8, timeEmbedDim: 128, inner: mid32 };
const which = Number(process.argv[4] ?? 3);
const config: NestedUNetConfig = { ...([inner16, mid32, top64][which - 1] as NestedUNetConfig), text: { featureDim: 64, projDim: 96, headLayers: 1, maskedCrossAttention: true } };
console.log(JSON.stringify(countParams(config)));
const model = new NestedUNet(config);
const rng = new Rng(1);
const x = model.config.levels.map((l) => rng.normalTensor([B, l.resolution, l.resolution, 3]) as tf.Tensor4D);
const tokens = rng.normalTensor([B, 8, 64]) as tf.Tensor3D;
const mask = tf.ones([B, 8]) as tf.Tensor2D;
const vars = [...model.params.values()];
for (let levelsUsed of [3]) {
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const outs = model.forward({ x, times: Array(B).fill(100), tokens, mask });
      return tf.addN(outs.map((o) => tf.mean(tf.square(o)))) as tf.Scalar;
    }, vars);
    value.dataSync();
    const t1 = performance.now();
    tf.dispose([value, ...Object.values(grads)]);
    const f0 = performance.now();
    tf.dispose(model.forward({ x, times: Array(B).fill(100), tokens, mask }).map((o) => (o.dataSync(), o)));
    console.log(`step ${((t1 - t0) / 1000).toFixed(2)} s  forward ${((performance.now() - f0) / 1000).toFixed(2)} s`);
  }
}
