import { maxAbsDiff, seeded } from '@matryoshka-ts/test-utils';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type FloatImage,
  type Uint8Image,
  cleanFidResize,
  clipPreprocess,
  pytorchFidResize,
  resizeBicubicPil,
  resizeBilinearTorch,
  resizeForFid,
} from './resize.js';

// The system interpreter carries torch 1.13 and Pillow 9.4 (the pyenv `python3` on PATH does not).
const PYTHON = '/usr/bin/python3';

/** Whether PYTHON has these modules, found without importing them (importing torch alone takes ~2 s). */
function probe(modules: string[]): { ok: boolean; why: string } {
  const check =
    `import importlib.util, sys; ` +
    `missing = [m for m in ${JSON.stringify(modules)} if importlib.util.find_spec(m) is None]; ` +
    `print(', '.join(missing)); sys.exit(1 if missing else 0)`;
  const run = spawnSync(PYTHON, ['-c', check], { encoding: 'utf8', timeout: 60_000 });
  if (run.status === 0) return { ok: true, why: '' };
  const reason = run.error ? run.error.message : `missing ${run.stdout.trim() || run.stderr.trim()}`;
  return {
    ok: false,
    why: `${PYTHON} cannot provide ${modules.join(', ')} (${reason}); the reference checks against it are skipped`,
  };
}

function randomUint8(seed: number, width: number, height: number, channels: number): Uint8Image {
  const u = seeded(seed);
  return {
    data: Uint8Array.from({ length: width * height * channels }, () => Math.floor(u() * 256)),
    width,
    height,
    channels,
  };
}

function randomFloat(seed: number, width: number, height: number, channels: number, scale: number): FloatImage {
  const u = seeded(seed);
  return { data: Float32Array.from({ length: width * height * channels }, () => u() * scale), width, height, channels };
}

/**
 * The python references. Cases needing the same modules run in ONE process (importing torch costs
 * ~2 s): inputs go to raw files listed in a JSON manifest, the script writes raw outputs next to them.
 */
const REFERENCE_SCRIPT = String.raw`
import json, sys
import numpy as np

# PIL is imported where it is used: the torch cases run where torch is installed without Pillow
# (Debian's python3-torch does not bring python3-pil).
def pil_f(x, w, h):  # each channel as a mode 'F' image, as clean-fid does
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(x[:, :, c], mode='F').resize((w, h), resample=Image.BICUBIC))
                     for c in range(x.shape[2])], axis=2)

def pil_u8(x, w, h):
    from PIL import Image
    img = Image.fromarray(x[:, :, 0], 'L') if x.shape[2] == 1 else Image.fromarray(x, 'RGB')
    return np.asarray(img.resize((w, h), resample=Image.BICUBIC)).reshape(h, w, x.shape[2])

def torch_bilinear(x, w, h):  # NCHW contiguous, as pytorch-fid's DataLoader batches are
    import torch, torch.nn.functional as F
    t = torch.from_numpy(x).permute(2, 0, 1).contiguous()[None]
    return F.interpolate(t, size=(h, w), mode='bilinear', align_corners=False)[0].permute(1, 2, 0).numpy()

def clean_fid(x, w, h):  # clean-fid make_resizer("PIL", False, "bicubic", (w, h))
    return pil_f(x.astype(np.float32), w, h).clip(0, 255).astype(np.float32)

def pytorch_fid(x, w, h):  # torchvision ToTensor: byte tensor .float().div(255)
    import torch
    return torch_bilinear(torch.from_numpy(x).float().div(255).numpy(), w, h)

def hf_clip(x, size, _):  # transformers CLIPImageProcessor, step by step
    from PIL import Image
    img = Image.fromarray(x, 'RGB')
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    nw, nh = (size, new_long) if width <= height else (new_long, size)
    a = np.array(img.resize((nw, nh), resample=Image.BICUBIC, reducing_gap=None))
    top, left = (nh - size) // 2, (nw - size) // 2
    a = a[top:top + size, left:left + size]
    a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    return ((a - mean) / std).transpose(2, 0, 1)

KINDS = {'pil-F': pil_f, 'pil-uint8': pil_u8, 'torch': torch_bilinear,
         'clean-fid': clean_fid, 'pytorch-fid': pytorch_fid, 'clip': hf_clip}
for case in json.load(open(sys.argv[1])):
    dtype = np.uint8 if case['dtype'] == 'uint8' else np.float32
    x = np.fromfile(case['input'], dtype=dtype).reshape(case['height'], case['width'], case['channels'])
    y = KINDS[case['kind']](x, case['outW'], case['outH'])
    np.ascontiguousarray(y).tofile(case['output'])
`;

type Kind = 'pil-F' | 'pil-uint8' | 'torch' | 'clean-fid' | 'pytorch-fid' | 'clip';

interface Case {
  name: string;
  kind: Kind;
  input: FloatImage | Uint8Image;
  outW: number;
  outH: number;
  /** Our result, flattened in the reference's layout (HWC, or CHW for CLIP). */
  ours: () => Float32Array | Uint8Array;
}

const dir = mkdtempSync(join(tmpdir(), 'mdm-metrics-resize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the cases' references in one python process; returns each case's output by name. */
function runReferences(tag: string, cases: Case[]): Map<string, Float32Array | Uint8Array> {
  const manifest = cases.map((c, i) => {
    const input = join(dir, `${tag}-in-${i}.bin`);
    writeFileSync(input, new Uint8Array(c.input.data.buffer, c.input.data.byteOffset, c.input.data.byteLength));
    const { width, height, channels } = c.input;
    const dtype = c.input.data instanceof Uint8Array ? 'uint8' : 'float32';
    return {
      kind: c.kind,
      input,
      output: join(dir, `${tag}-out-${i}.bin`),
      width,
      height,
      channels,
      dtype,
      outW: c.outW,
      outH: c.outH,
    };
  });
  const manifestPath = join(dir, `${tag}-cases.json`);
  writeFileSync(manifestPath, JSON.stringify(manifest));
  const run = spawnSync(PYTHON, ['-c', REFERENCE_SCRIPT, manifestPath], { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0)
    throw new Error(`reference script failed (${run.status ?? run.error?.message}):\n${run.stderr}`);
  const results = new Map<string, Float32Array | Uint8Array>();
  cases.forEach((c, i) => {
    const bytes = readFileSync(manifest[i].output);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    results.set(c.name, c.kind === 'pil-uint8' ? new Uint8Array(buffer) : new Float32Array(buffer));
  });
  return results;
}

/**
 * Cases grouped by the python modules they need; each group runs in ONE python process, on first
 * use, so torch is imported once for all its cases.
 */
const groups = new Map<string, { cases: Case[]; results?: Map<string, Float32Array | Uint8Array> }>();

function reference(modules: string[], c: Case): Float32Array | Uint8Array {
  const key = modules.join('+');
  const group = groups.get(key)!;
  group.results ??= runReferences(key, group.cases);
  return group.results.get(c.name)!;
}

/** Measured max |ours − reference| per case, printed at the end (the report quotes them). */
const measured: string[] = [];
afterAll(() => {
  if (measured.length) console.log(`resize: max |ours − reference|\n${measured.join('\n')}`);
});

/** One `describe` of reference comparisons, each case within `tolerance` of the python reference. */
function referenceSuite(title: string, modules: string[], tolerance: number, cases: Case[]): void {
  const available = probe(modules);
  if (!available.ok) console.warn(available.why);
  const key = modules.join('+');
  for (const c of cases) c.name = `${title.split(' ')[0]} ${c.name}`;
  if (available.ok) {
    if (!groups.has(key)) groups.set(key, { cases: [] });
    groups.get(key)!.cases.push(...cases);
  }
  describe.skipIf(!available.ok)(title, () => {
    for (const c of cases) {
      it(c.name, () => {
        const want = reference(modules, c);
        const got = c.ours();
        expect(got.length).toBe(want.length);
        const diff = maxAbsDiff(got, want);
        measured.push(`  ${c.name}: ${diff.toExponential(2)}`);
        expect(diff).toBeLessThanOrEqual(tolerance);
      }, 60_000);
    }
  });
}

const shapes: Array<[number, number, number, number, number]> = [
  // [width, height, channels, outW, outH]: up, down, non-square, odd, 1 and 3 channels.
  [17, 23, 3, 299, 299],
  [64, 64, 1, 299, 299],
  [300, 200, 3, 299, 299],
  [500, 333, 3, 299, 299],
  [8, 5, 1, 3, 7],
  [41, 30, 3, 41, 12],
];

// We reproduce torch's roundings (float32 lambdas and weight products, one rounding of the sum), so
// this is bit-exact here. The bound is the brief's 1e-5 for float32 results in [0, 1]: another build
// that evaluates in float32 only, or with fused multiply-adds, lands 1–2 ulp (≈ 1e-7) away, while a
// wrong tap or lambda moves results by far more (rounding the source index to float32 alone gives
// 1.5e-5 on these inputs).
referenceSuite(
  'resizeBilinearTorch vs torch F.interpolate(bilinear, align_corners=False)',
  ['torch', 'numpy'],
  1e-5,
  shapes.map(([w, h, ch, outW, outH], i) => {
    const input = randomFloat(100 + i, w, h, ch, 1);
    return {
      name: `${w}×${h}×${ch} → ${outW}×${outH}`,
      kind: 'torch' as const,
      input,
      outW,
      outH,
      ours: () => resizeBilinearTorch(input, outW, outH).data,
    };
  }),
);

// PIL's 'F' path sums in double and stores float32 after each pass, as we do; 1e-3 on 0..255 is the
// brief's bound for float32 storage (≈ 2 ulp at 255 is 3e-5), in practice we match to the bit.
referenceSuite(
  'resizeBicubicPil(F) vs PIL Image.resize(BICUBIC) on mode F images',
  ['PIL', 'numpy'],
  1e-3,
  [...shapes, [1000, 700, 1, 101, 73] as const].map(([w, h, ch, outW, outH], i) => {
    const input = randomFloat(200 + i, w, h, ch, 255);
    return {
      name: `${w}×${h}×${ch} → ${outW}×${outH}`,
      kind: 'pil-F' as const,
      input,
      outW,
      outH,
      ours: () => resizeBicubicPil(input, outW, outH, 'F').data,
    };
  }),
);

// The uint8 path is pure integer arithmetic once the (double) coefficients are rounded, so it is
// bit-exact: tolerance 0.
referenceSuite(
  'resizeBicubicPil(uint8) vs PIL Image.resize(BICUBIC) on L/RGB images',
  ['PIL', 'numpy'],
  0,
  [...shapes, [500, 333, 3, 336, 224], [333, 500, 3, 224, 336], [1000, 700, 3, 101, 73], [5, 3, 3, 11, 2]].map(
    ([w, h, ch, outW, outH], i) => {
      const input = randomUint8(300 + i, w, h, ch);
      return {
        name: `${w}×${h}×${ch} → ${outW}×${outH}`,
        kind: 'pil-uint8' as const,
        input,
        outW,
        outH,
        ours: () => resizeBicubicPil(input, outW, outH, 'uint8').data,
      };
    },
  ),
);

const fidShapes: Array<[number, number]> = [
  [17, 23],
  [64, 64],
  [300, 200],
  [500, 333],
];

referenceSuite(
  'cleanFidResize vs clean-fid make_resizer("PIL", False, "bicubic") (per-channel PIL F, clip)',
  ['PIL', 'numpy'],
  1e-3,
  fidShapes.map(([w, h], i) => {
    const input = randomUint8(400 + i, w, h, 3);
    return {
      name: `${w}×${h} → 299`,
      kind: 'clean-fid' as const,
      input,
      outW: 299,
      outH: 299,
      ours: () => cleanFidResize(input).data,
    };
  }),
);

referenceSuite(
  'pytorchFidResize vs ToTensor + F.interpolate(299, bilinear)',
  ['torch', 'numpy'],
  1e-5,
  fidShapes.map(([w, h], i) => {
    const input = randomUint8(500 + i, w, h, 3);
    return {
      name: `${w}×${h} → 299`,
      kind: 'pytorch-fid' as const,
      input,
      outW: 299,
      outH: 299,
      ours: () => pytorchFidResize(input).data,
    };
  }),
);

// Bit-exact resize and crop, then the same float32 operations as numpy: exact too.
referenceSuite(
  'clipPreprocess vs CLIPImageProcessor steps (PIL bicubic shortest side, floor centre crop, rescale, normalise)',
  ['PIL', 'numpy'],
  0,
  (
    [
      [500, 333],
      [333, 500],
      [64, 64],
      [17, 23],
      [304, 227],
    ] as const
  ).map(([w, h], i) => {
    const input = randomUint8(600 + i, w, h, 3);
    return {
      name: `${w}×${h} → 224`,
      kind: 'clip' as const,
      input,
      outW: 224,
      outH: 0,
      ours: () => clipPreprocess(input).data,
    };
  }),
);

describe('resize: closed forms (no reference needed)', () => {
  it('a constant image stays constant', () => {
    const gray: Uint8Image = { data: new Uint8Array(40 * 30 * 3).fill(77), width: 40, height: 30, channels: 3 };
    for (const [w, h] of [
      [299, 299],
      [7, 11],
    ]) {
      expect(resizeBicubicPil(gray, w, h, 'uint8').data.every((v) => v === 77)).toBe(true);
      // Normalised weights sum to 1 only up to double rounding, then float32 storage.
      expect(
        maxAbsDiff(
          resizeBicubicPil({ ...gray, data: Float32Array.from(gray.data) }, w, h, 'F').data,
          new Float32Array(w * h * 3).fill(77),
        ),
      ).toBeLessThan(1e-4);
      // Torch's λ and 1 − λ are float32 and each blend rounds, so a constant comes back within an ulp.
      expect(
        maxAbsDiff(pytorchFidResize(gray, w).data, new Float32Array(w * w * 3).fill(77 / 255)),
      ).toBeLessThanOrEqual(6e-8);
    }
  });

  it('the identity size returns the input', () => {
    const img = randomUint8(7, 13, 9, 3);
    expect(resizeBicubicPil(img, 13, 9, 'uint8').data).toEqual(img.data);
    const f = randomFloat(8, 13, 9, 3, 255);
    expect(resizeBicubicPil(f, 13, 9, 'F').data).toEqual(f.data);
    expect(resizeBilinearTorch(f, 13, 9).data).toEqual(f.data);
  });

  it('torch bilinear 2× upsampling of [0, 1] gives [0, ¼, ¾, 1] (edge clamp at 0 and at the last pixel)', () => {
    const out = resizeBilinearTorch({ data: Float32Array.of(0, 1), width: 2, height: 1, channels: 1 }, 4, 1);
    expect(Array.from(out.data)).toEqual([0, 0.25, 0.75, 1]);
  });

  it('clipPreprocess returns CHW 3×224×224, resizeForFid dispatches', () => {
    const img = randomUint8(9, 50, 40, 3);
    const clip = clipPreprocess(img);
    expect([clip.channels, clip.height, clip.width, clip.data.length]).toEqual([3, 224, 224, 3 * 224 * 224]);
    expect(resizeForFid(img, 64, 'clean-fid').data).toEqual(cleanFidResize(img, 64).data);
    expect(resizeForFid(img, 64, 'pytorch-fid').data).toEqual(pytorchFidResize(img, 64).data);
  });

  it('rejects a mode that does not match the data type', () => {
    const img = randomUint8(10, 4, 4, 1);
    // @ts-expect-error: a uint8 image in mode F is a type error too
    expect(() => resizeBicubicPil(img, 2, 2, 'F')).toThrow(/mode 'F'/);
  });
});
