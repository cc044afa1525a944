#!/usr/bin/python3
"""PyTorch reference of our NestedUNet (packages/nested-unet/src), for timing the same training and
sampling step in PyTorch (CPU) and in tfjs side by side.

    node --conditions=source --import tsx bench/src/export-reference.ts /tmp/mdm-reference emoji
    /usr/bin/python3 bench/torch/mdm_reference.py /tmp/mdm-reference --check
    /usr/bin/python3 bench/torch/mdm_reference.py /tmp/mdm-reference --bench --batch 8

The model is built from the exported config.json (the resolved NestedUNetConfig), with the
official ml-mdm state-dict names, and loaded from weights.safetensors with a strict key/shape
check. `--check` loads check-weights.safetensors (zero-initialised layers perturbed so the output
is not trivially 0) and compares the forward pass with our tfjs outputs in io.safetensors.
`--bench` times one training step and one sampling step and prints one JSON line.

BLAS (found on this machine: Debian's python3-torch 1.13.1+dfsg-4, which reports itself as
torch.__version__ == '1.13.0a0'; `/usr/bin/python3`):
  * torch.__config__.show() says BLAS_INFO=generic: Debian links libtorch_cpu.so against the
    generic names libblas.so.3 / liblapack.so.3, and which library those are is decided by
    update-alternatives. Here the alternatives already point at OpenBLAS
    (/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3, OpenBLAS 0.3.21 pthread), which
    /proc/self/maps confirms at run time (the "blas" field of --bench reports it), so no
    LD_LIBRARY_PATH is needed. On a machine whose alternative is the reference BLAS, run with
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread to get OpenBLAS anyway.
    (`update-alternatives --display libblas.so.3-x86_64-linux-gnu`: OpenBLAS is the only
    alternative installed; there is no reference BLAS to fall back to.)
  * A 1024² float32 matmul runs at ~85-125 GFLOP/s on 2 threads, with or without that
    LD_LIBRARY_PATH (the same library is loaded).
  * Convolutions do not go through BLAS: torch uses oneDNN (MKL-DNN 2.6.3, bundled) for them;
    linear layers and attention products use OpenBLAS. OpenBLAS has its own thread pool, so
    OPENBLAS_NUM_THREADS is set to --threads before torch is imported (unless already set).
  * Threads: torch's intra-op pool is libgomp (OpenMP). With the default spin-wait policy and
    other processes on the 2 cores, step times jumped between 1.5 s and 11 s (idle OpenMP
    workers spin while OpenBLAS's pthreads wait for a core); OMP_WAIT_POLICY=PASSIVE (the
    default here, overridable from the environment) gives a steady ~0.6 s on the same load.

No pip packages: safetensors is read with numpy + struct.
"""
import argparse
import resource
import json
import math
import os
import struct
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('dir', nargs='?', default='/tmp/mdm-reference', help='output of bench/src/export-reference.ts')
    p.add_argument('--check', action='store_true',
                   help='compare the forward pass with the tfjs outputs in io.safetensors')
    p.add_argument('--bench', action='store_true', help='time one training step and one sampling step')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5, help='timed repeats (the median is reported)')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs before the timed ones')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--no-adam', action='store_true',
                   help='train step without the optimizer update (as bench/src/step-bench.ts times it)')
    p.add_argument('--tol', type=float, default=1e-4, help='--check fails above this max abs diff')
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == '__main__' else None
if ARGS is not None:
    # OpenBLAS and libgomp read these when they are loaded, i.e. when torch is imported.
    os.environ.setdefault('OPENBLAS_NUM_THREADS', str(ARGS.threads))
    os.environ.setdefault('OMP_NUM_THREADS', str(ARGS.threads))
    # Idle OpenMP threads sleep instead of spinning: on 2 shared cores, spinning workers starve
    # OpenBLAS's threads and anything else running, and steps took 1.5-11 s instead of ~0.6 s.
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------- safetensors

_DTYPES = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'U8': 'u1'}


def read_safetensors(path):
    """{name: tensor} and the metadata of a safetensors file (8-byte LE header length, JSON header, data)."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop('__metadata__', {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if info['dtype'] not in _DTYPES:
            raise ValueError(f'{path}: {name}: unsupported dtype {info["dtype"]}')
        start, end = info['data_offsets']
        dtype = np.dtype(_DTYPES[info['dtype']])
        arr = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=base + start)
        tensors[name] = torch.from_numpy(arr.reshape(info['shape']).copy())
    return tensors, metadata


# ---------------------------------------------------------------- layers (nn.ts)

def multi_head_attention(q, k, v, heads, key_mask=None):
    """q [B, Nq, C], k, v [B, Nk, C] → [B, Nq, C]; heads are contiguous channel groups, q and k each
    scaled by (C/heads)^(-1/4); key_mask [B, Nk] (1 = attend) adds −1e30 to padded keys."""
    b, nq, c = q.shape
    nk = k.shape[1]
    ch = c // heads
    scale = 1 / math.sqrt(math.sqrt(ch))

    def split(t, n):
        return t.reshape(b, n, heads, ch).transpose(1, 2)  # [B, h, N, ch]

    logits = split(q * scale, nq) @ split(k * scale, nk).transpose(-1, -2)  # [B, h, Nq, Nk]
    if key_mask is not None:
        logits = logits + ((1 - key_mask) * -1e30)[:, None, None, :]
    out = logits.softmax(-1) @ split(v, nk)
    return out.transpose(1, 2).reshape(b, nq, c)


def time_frequencies(T):
    """H = T/8 frequencies exp(−k·fround(ln(10000)/H)), the argument rounded to float32 as in time-embedding.ts."""
    half = T // 8
    step = float(np.float32(math.log(10000) / half))
    args = np.array([k * -step for k in range(half)], dtype=np.float64).astype(np.float32).astype(np.float64)
    return torch.from_numpy(np.exp(args).astype(np.float32))


def sinusoid(t, T):
    """[sin(t·f), cos(t·f)] for t [B] → [B, T/4] (zero-padded when T/4 is odd)."""
    f = time_frequencies(T)
    args = t.reshape(-1, 1) * f.reshape(1, -1)
    emb = torch.cat([args.sin(), args.cos()], 1)
    width = T // 4
    return F.pad(emb, (0, width - emb.shape[1])) if width > emb.shape[1] else emb


class TextContext:
    """Projected text tokens [B, L, P] every cross-attention sees, with their mask [B, L] or None."""

    def __init__(self, tokens, mask):
        self.tokens, self.mask = tokens, mask

    def first(self, b):
        cut = lambda t: t if t is None or t.shape[0] == b else t[:b]  # noqa: E731
        return TextContext(cut(self.tokens), cut(self.mask))


# ---------------------------------------------------------------- residual-block.ts

class ResidualBlock(nn.Module):
    """h = conv1(SiLU(GN(x))); (a, b) = Linear(SiLU(temb)); h = SiLU(GN(h)·(1 + a) + b);
    out = conv2(dropout(h)) + skip(x)."""

    def __init__(self, cin, cout, temb_dim, groups, dropout=0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_layer = nn.Linear(temb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv3 = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time_layer(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h))
        return h + (self.conv3(x) if self.conv3 is not None else x)


# ---------------------------------------------------------------- attention.ts

class AttentionLayer(nn.Module):
    """Spatial self-attention (+ cross-attention to text with its own softmax, summed), zero-init 1×1
    output projection with a residual, then the optional feed-forward. GroupNorms use 32 groups."""

    def __init__(self, c, heads, text_width, ffn):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(32, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        if text_width > 0:
            self.norm_cond = nn.LayerNorm(text_width)
            self.kv_cond = nn.Linear(text_width, 2 * c)
        self.proj_out = nn.Conv2d(c, c, 1)
        self.ffn = (nn.Sequential(nn.GroupNorm(32, c), nn.Conv2d(c, 4 * c, 1), nn.GELU(), nn.Conv2d(4 * c, c, 1))
                    if ffn else None)

    def forward(self, x, text=None):
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * c, h * w).transpose(1, 2)  # [B, HW, 3C]: q, k, v in order
        q, k, v = qkv.chunk(3, dim=2)
        a = multi_head_attention(q, k, v, self.heads)
        if text is not None:
            kc, vc = self.kv_cond(self.norm_cond(text.tokens)).chunk(2, dim=2)
            a = a + multi_head_attention(q, kc, vc, self.heads, text.mask)
        out = x + self.proj_out(a.transpose(1, 2).reshape(b, c, h, w))
        return out + self.ffn(out) if self.ffn is not None else out


# ---------------------------------------------------------------- text-head.ts

class TextHeadAttention(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj_out = nn.Linear(width, width)


class TextHeadMlp(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.main = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(),
                                  nn.Linear(4 * width, width))


class TextHeadLayer(nn.Module):
    """x + proj(MHA(LayerNorm(x))), then x + MLP(x) with a 4× GELU hidden layer; `mask` excludes padded keys."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.attn = TextHeadAttention(width)
        self.mlp = TextHeadMlp(width)

    def forward(self, x, mask=None):
        q, k, v = self.attn.qkv(self.attn.norm(x)).chunk(3, dim=2)
        x = x + self.attn.proj_out(multi_head_attention(q, k, v, self.heads, mask))
        return x + self.mlp.main(x)


# ---------------------------------------------------------------- unet-level.ts

class DownStage(nn.Module):
    """`down_blocks.i`: residual blocks, each followed by L attention layers, then a stride-2 3×3 conv (all but the
    last stage)."""

    def __init__(self, cin, width, blocks, attn_per_block, resample, make_res, make_attn):
        super().__init__()
        self.attn_per_block = attn_per_block
        self.resnets = nn.ModuleList([make_res(cin if j == 0 else width, width) for j in range(blocks)])
        self.attn = nn.ModuleList([make_attn(width) for _ in range(blocks * attn_per_block)])
        self.resample = nn.Conv2d(width, width, 3, stride=2, padding=1) if resample else None

    def forward(self, h, temb, text, skips):
        L = self.attn_per_block
        for j, res in enumerate(self.resnets):
            h = res(h, temb)
            for layer in self.attn[j * L:(j + 1) * L]:
                h = layer(h, text)
            skips.append(h)
        if self.resample is not None:
            h = self.resample(h)
            skips.append(h)
        return h


class MidStage(nn.Module):
    """`mid_blocks.k`: one residual block and optionally one attention layer."""

    def __init__(self, c, make_res, make_attn, attention):
        super().__init__()
        self.resnets = nn.ModuleList([make_res(c, c)])
        self.attn = nn.ModuleList([make_attn(c)] if attention else [])

    def forward(self, h, temb, text):
        h = self.resnets[0](h, temb)
        return self.attn[0](h, text) if len(self.attn) else h


class UpStage(nn.Module):
    """`up_blocks.u`: N+1 residual blocks on concat(h, latest skip), each followed by L attention layers,
    then nearest ×2 and a 3×3 conv (all but the last stage)."""

    def __init__(self, cins, width, attn_per_block, resample, make_res, make_attn):
        super().__init__()
        self.attn_per_block = attn_per_block
        self.resnets = nn.ModuleList([make_res(cin, width) for cin in cins])
        self.attn = nn.ModuleList([make_attn(width) for _ in range(len(cins) * attn_per_block)])
        self.resample = nn.Conv2d(width, width, 3, padding=1) if resample else None

    def forward(self, h, temb, text, skips):
        L = self.attn_per_block
        for j, res in enumerate(self.resnets):
            h = res(torch.cat([h, skips.pop()], dim=1), temb)
            for layer in self.attn[j * L:(j + 1) * L]:
                h = layer(h, text)
        if self.resample is not None:
            h = self.resample(F.interpolate(h, scale_factor=2, mode='nearest'))
        return h


class UNetLevel(nn.Module):
    """One level of the nest (its parameters, then the inner level's under `inner_unet.`), registered in the
    official order: time MLP, [shared conditioning], micro MLPs, conv_in, down, mid, up, norm_out, conv_out,
    then [text projection and head] for the innermost level or [inner_unet, in_adapter, out_adapter]."""

    def __init__(self, config, index):
        super().__init__()
        level = config['levels'][index]
        self.index = index
        self.level = level
        self.innermost = level['isInnermost']
        T = level['timeEmbedDim']
        ch = level['channels']
        text, labels = config.get('text'), config.get('labels')
        text_width, heads, img = config['textWidth'], config['attentionHeads'], config['imageChannels']
        make_res = lambda cin, cout: ResidualBlock(cin, cout, T, level['groups'], level['dropout'])  # noqa: E731
        make_attn = lambda c: AttentionLayer(c, heads, text_width, level['attentionFfn'])  # noqa: E731

        self.temb_layer1 = nn.Linear(T // 4, T)
        self.temb_layer2 = nn.Linear(T, T)
        if self.innermost and text:
            self.cond_emb = nn.Linear(text_width, T, bias=False)
        if self.innermost and labels:
            self.label_emb = nn.Embedding(labels['numClasses'] + 1, T)
        self.cond_layers = nn.ModuleDict({name: nn.ModuleList([nn.Linear(T // 4, T), nn.Linear(T, T)])
                                          for name in level['microConditioning']})
        self.conv_in = nn.Conv2d(img, ch[0], 3, padding=1)

        # Channel bookkeeping of the skips, as levelSpecs does it.
        c, skips, down = ch[0], [ch[0]], []
        for i, width in enumerate(ch):
            last = i == len(ch) - 1
            down.append(DownStage(c, width, level['resBlocks'][i], level['attentionLayers'][i], not last, make_res,
                                  make_attn))
            skips += [width] * level['resBlocks'][i] + ([] if last else [width])
            c = width
        self.down_blocks = nn.ModuleList(down)
        if level['midBlock']:
            self.mid_blocks = nn.ModuleList([MidStage(c, make_res, make_attn, True),
                                             MidStage(c, make_res, make_attn, False)])
        up = []
        for i in reversed(range(len(ch))):
            cins = []
            for _ in range(level['resBlocks'][i] + 1):
                cins.append(c + skips.pop())
                c = ch[i]
            up.append(UpStage(cins, ch[i], level['attentionLayers'][i], i != 0, make_res, make_attn))
        self.up_blocks = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(level['groups'], c)
        self.conv_out = nn.Conv2d(c, img, 3, padding=1)

        if self.innermost:
            if text and text['projDim'] > 0:
                self.lm_proj = nn.Linear(text['featureDim'], text['projDim'])
            if text:
                self.lm_head = nn.ModuleList([TextHeadLayer(text_width, heads) for _ in range(text['headLayers'])])
        else:
            inner_ch = config['levels'][index + 1]['channels'][0]
            self.inner_unet = UNetLevel(config, index + 1)
            self.in_adapter = nn.Conv2d(ch[-1], inner_ch, 3, padding=1) if level['innerInput'] else None
            self.out_adapter = nn.Conv2d(inner_ch, ch[-1], 3, padding=1)

    def micro_embedding(self, values, batch, T):
        """Σ over micro-conditioning names of MLP(sinusoid(v)); `scale` is clamped at its default, others ×1000."""
        total = None
        for name, fallback in self.level['microConditioning'].items():
            v = values[name].float() if values and name in values else torch.full((batch,), float(fallback))
            v = torch.clamp(v / fallback, max=1) * fallback if name == 'scale' else v * 1000
            l1, l2 = self.cond_layers[name]
            term = l2(F.silu(l1(sinusoid(v, T))))
            total = term if total is None else total + term
        return total

    def run(self, xs, times, shared, feature, micro=None):
        """This level and every level inside it → (outputs per level, this level's last feature map)."""
        level, T = self.level, self.level['timeEmbedDim']
        x = xs[self.index]
        b = x.shape[0]
        temb = self.temb_layer2(F.silu(self.temb_layer1(sinusoid(times, T))))
        if shared['embedding'] is not None:
            temb = temb + shared['embedding']
        m = self.micro_embedding(micro, times.shape[0], T)
        if m is not None:
            temb = temb + m
        temb = temb[:b]  # a level with fewer samples sees the first b of the batch
        text = shared['text'].first(b) if shared['text'] is not None else None

        if level['inputStdNormalisation']:
            x = x / x.flatten(1).std(dim=1, unbiased=True).reshape(-1, 1, 1, 1)
        h = self.conv_in(x)
        if feature is not None:
            h = h + feature
        skips = [h]
        for stage in self.down_blocks:
            h = stage(h, temb, text, skips)
        inner_outputs = []
        if self.innermost:
            if level['midBlock']:
                for stage in self.mid_blocks:
                    h = stage(h, temb, text)
        else:
            inner_b = xs[self.index + 1].shape[0]
            to_inner = self.in_adapter(h) if self.in_adapter is not None else None
            if to_inner is not None and inner_b > b:  # samples this level does not see get a zero feature
                to_inner = torch.cat([to_inner, to_inner.new_zeros((inner_b - b, *to_inner.shape[1:]))])
            inner_outputs, inner_feature = self.inner_unet.run(xs, times, shared, to_inner, micro)
            h = h + self.out_adapter(inner_feature)[:b]
        for stage in self.up_blocks:
            h = stage(h, temb, text, skips)
        return [self.conv_out(F.silu(self.norm_out(h)))] + inner_outputs, h


# ---------------------------------------------------------------- nested-unet.ts, conditioning.ts

class NestedUNet(UNetLevel):
    """Level 0 of the nest, with the entry point: images per level (NCHW, level 0 first), 0-based time
    indices per sample, text features [B, L, D] and mask [B, L] (and/or labels [B]) → one output per level."""

    def __init__(self, config):
        super().__init__(config, 0)
        self.config = config

    def innermost_level(self):
        level = self
        while not level.innermost:
            level = level.inner_unet
        return level

    def shared_conditioning(self, tokens=None, mask=None, labels=None):
        """Pooled-text (+ label) embedding added to every level's time embedding, and the cross-attention tokens."""
        text_cfg, inner = self.config.get('text'), self.innermost_level()
        embedding, text = None, None
        if text_cfg:
            if tokens is None:
                raise ValueError('this model is text-conditioned: pass tokens [B, L, D] (and a mask)')
            masked = text_cfg['maskedCrossAttention']
            if text_cfg['projDim'] > 0:
                tokens = inner.lm_proj(tokens)
            mask = mask.float() if mask is not None else None
            for layer in inner.lm_head:
                tokens = layer(tokens, mask if masked else None)
            if mask is None or (not masked and text_cfg['headLayers'] > 0):
                pooled = tokens.mean(1)
            else:
                pooled = (tokens * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
            embedding = inner.cond_emb(pooled)
            text = TextContext(tokens, mask if masked else None)
        if self.config.get('labels'):
            if labels is None:
                raise ValueError('this model is class-conditional: pass labels [B]')
            rows = inner.label_emb(labels.long())
            embedding = rows if embedding is None else embedding + rows
        return {'embedding': embedding, 'text': text}

    def forward(self, xs, times, tokens=None, mask=None, labels=None, micro=None):
        shared = self.shared_conditioning(tokens, mask, labels)
        return self.run(list(xs), times.float(), shared, None, micro)[0]


def load_weights(model, path):
    """Loads an ml-mdm state dict after checking that keys and shapes match the model exactly."""
    weights, _ = read_safetensors(path)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [f'{k} {list(weights[k].shape)} vs {list(own[k].shape)}'
             for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise SystemExit(f'{path} does not match the model:\n  missing {missing[:20]}\n'
                         f'  unexpected {unexpected[:20]}\n  wrong shapes {wrong[:20]}')
    model.load_state_dict(weights, strict=True)


# ---------------------------------------------------------------- training and sampling (losses, samplers)

def draw_training_example(images, tables, resolutions, gen):
    """Clean images of every level (cascaded average pooling), t uniform in {0 … steps−1}, ε per level,
    γ = table[t + 1] and x_t = √γ·x0 + √(1−γ)·ε — as drawTrainingExample."""
    batch, steps = images.shape[0], tables[0].shape[0] - 1
    times = torch.randint(steps, (batch,), generator=gen)
    x0 = [images]
    for r in resolutions[1:]:
        x0.append(F.avg_pool2d(x0[-1], x0[-1].shape[-1] // r))
    eps = [torch.randn(x.shape, generator=gen) for x in x0]
    gamma = [table[times + 1].reshape(-1, 1, 1, 1) for table in tables]
    xt = [g.sqrt() * x + (1 - g).sqrt() * e for x, e, g in zip(x0, eps, gamma)]
    return {'times': times.float(), 'x0': x0, 'eps': eps, 'gamma': gamma, 'xt': xt}


def predict_x0(out, xt, alpha, sigma, prediction):
    if prediction == 'x0':
        return out
    if prediction == 'eps':
        return (xt - sigma * out) / alpha
    return alpha * xt - sigma * out  # v


def multi_resolution_loss(outputs, ex, prediction, target):
    """Σ over levels of the per-sample mean squared error of the predicted target, averaged over the batch."""
    per_sample = 0
    for out, xt, x0, eps, g in zip(outputs, ex['xt'], ex['x0'], ex['eps'], ex['gamma']):
        alpha, sigma = g.sqrt(), (1 - g).sqrt()
        x0_hat = predict_x0(out, xt, alpha, sigma, prediction)
        if target == 'x0':
            pred, want = x0_hat, x0
        elif target == 'eps':
            pred, want = (out if prediction == 'eps' else (xt - alpha * x0_hat) / sigma), eps
        else:  # v
            eps_hat = out if prediction == 'eps' else (xt - alpha * x0_hat) / sigma
            pred, want = (out if prediction == 'v' else alpha * eps_hat - sigma * x0_hat), alpha * eps - sigma * x0
        per_sample = per_sample + (pred - want).square().mean(dim=(1, 2, 3))
    return per_sample.mean()


def dynamic_threshold(x0, quantile=0.995, max_scale=100.0):
    """Imagen's dynamic thresholding: s = clamp(quantile(|x̂0|), 1, max) per sample, x̂0 ← clamp(x̂0, −s, s)/s."""
    s = torch.quantile(x0.abs().flatten(1), quantile, dim=1).clamp(1, max_scale).reshape(-1, 1, 1, 1)
    return torch.minimum(torch.maximum(x0, -s), s) / s


@torch.no_grad()
def sample_step(model, xs, t, s, tables, tokens, mask, prediction, gen):
    """One DDPM ancestral step t → s of every level: the network at time index t − 1, x̂0 (dynamically
    thresholded), x_s = x̂0·β√γ_s/(1−γ_t) + x_t·√α(1−γ_s)/(1−γ_t) + √β̃·z."""
    batch = xs[-1].shape[0]
    preds = model(xs, torch.full((batch,), float(t - 1)), tokens, mask)
    out = []
    for x, pred, table in zip(xs, preds, tables):
        g_t, g_s = float(table[t]), float(table[s])
        x0 = dynamic_threshold(predict_x0(pred, x, math.sqrt(g_t), math.sqrt(1 - g_t), prediction))
        alpha = g_t / g_s
        beta = 1 - alpha
        var = beta * (1 - g_s) / (1 - g_t)
        mean = x0 * (beta * math.sqrt(g_s) / (1 - g_t)) + x * (math.sqrt(alpha) * (1 - g_s) / (1 - g_t))
        out.append(mean + math.sqrt(var) * torch.randn(x.shape, generator=gen))
    return out


# ---------------------------------------------------------------- main

def blas_in_use():
    """The BLAS/LAPACK libraries actually mapped into this process (after a matmul), and OpenBLAS's own config."""
    torch.randn(64, 64) @ torch.randn(64, 64)
    with open('/proc/self/maps') as f:
        libs = sorted({line.split()[-1] for line in f if 'blas' in line.lower() or 'lapack' in line.lower()})
    info = ', '.join(os.path.realpath(p) for p in libs if 'libblas' in p or 'openblas' in p.split('/')[-1])
    try:
        import ctypes
        lib = ctypes.CDLL(next(p for p in libs if 'openblas' in p.split('/')[-1]))
        lib.openblas_get_config.restype = ctypes.c_char_p
        info = f'{lib.openblas_get_config().decode().strip()} ({info}; {lib.openblas_get_num_threads()} threads)'
    except (StopIteration, OSError, AttributeError):
        pass
    return info or 'none found in /proc/self/maps'


def median(xs):
    return sorted(xs)[len(xs) // 2]


def timed(f, warmup, repeats):
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return median(ts)


def main(args):
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, 'config.json')) as f:
        config = json.load(f)
    model = NestedUNet(config)
    params = sum(p.numel() for p in model.parameters())
    load_weights(model, os.path.join(args.dir, 'weights.safetensors'))
    io, _ = read_safetensors(os.path.join(args.dir, 'io.safetensors'))
    n_levels = len(config['levels'])
    resolutions = [level['resolution'] for level in config['levels']]
    if params != config['paramCount']:
        raise SystemExit(f'parameter count {params:,} differs from ours ({config["paramCount"]:,})')
    print(f'# {config["train"]["preset"]}: {"→".join(map(str, resolutions))} px, {params:,} parameters '
          f'(ours: {config["paramCount"]:,}), strict key/shape match with weights.safetensors', file=sys.stderr)
    failed = False

    if args.check:
        check = NestedUNet(config).eval()
        load_weights(check, os.path.join(args.dir, 'check-weights.safetensors'))
        with torch.no_grad():
            outs = check([io[f'x.{n}'] for n in range(n_levels)], io['times'], io.get('tokens'), io.get('mask'))
        for n, out in enumerate(outs):
            ref = io[f'out.{n}']
            diff = (out - ref).abs().max().item()
            failed |= not diff <= args.tol
            print(f'check level {n} ({resolutions[n]} px): max |torch − tfjs| = {diff:.3e} '
                  f'(max |tfjs| = {ref.abs().max().item():.3f})')

    if args.bench:
        train_cfg = config['train']
        tables_f32 = [io[f'gammas.{n}'] for n in range(n_levels)]  # ᾱ per level, float32 as ours
        tables = [t.double() for t in tables_f32]
        gen = torch.Generator().manual_seed(2)
        B, r0, c = args.batch, resolutions[0], config['imageChannels']
        images = torch.randn((B, c, r0, r0), generator=gen)
        # The first io sample is 'grinning face with big eyes', the caption step-bench.ts repeats.
        tokens = io['tokens'][:1].expand(B, -1, -1).contiguous() if 'tokens' in io else None
        mask = io['mask'][:1].expand(B, -1).contiguous() if 'mask' in io else None
        opt = train_cfg['optimizer']
        adam = torch.optim.Adam(model.parameters(), lr=opt['lr'], betas=(opt['beta1'], opt['beta2']), eps=opt['eps'])

        def train_step():
            ex = draw_training_example(images, tables_f32, resolutions, gen)
            loss = multi_resolution_loss(model(ex['xt'], ex['times'], tokens, mask), ex, train_cfg['prediction'],
                                         train_cfg['target'])
            adam.zero_grad(set_to_none=True)
            loss.backward()
            if not args.no_adam:
                adam.step()
            return loss.item()

        noise = [torch.randn((B, c, r, r), generator=gen) for r in resolutions]

        def sample_once():  # grid time 600 → 596, as step-bench.ts
            return sample_step(model, noise, 600, 596, tables, tokens, mask, train_cfg['prediction'], gen)

        load = os.getloadavg()[0]
        train_s = timed(train_step, args.warmup, args.repeats)
        model.eval()
        sample_s = timed(sample_once, args.warmup, args.repeats)
        print(json.dumps({
            'torch': torch.__version__, 'threads': torch.get_num_threads(), 'batch': B, 'preset': train_cfg['preset'],
            'train_step_s': round(train_s, 4), 'sample_step_s': round(sample_s, 4), 'adam': not args.no_adam,
            'repeats': args.repeats, 'params': params, 'blas': blas_in_use(),
            'mkldnn': torch.backends.mkldnn.is_available(),
            'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'), 'loadavg_1min': round(load, 2),
            'peak_rss_mib': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(ARGS))
