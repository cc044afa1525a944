import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled addon's functions (native/addon.cc). Tensor arguments are Float32Arrays. */
export interface NativeAddon {
  /**
   * provider: the sgemm in use; convProvider: who computes convolutions; onednn: oneDNN's version
   * ('' when not loaded), with the convolutions it ran and declined (run by the addon instead).
   */
  info(): {
    provider: 'openblas' | 'builtin';
    openblas: boolean;
    avx2: boolean;
    threads: number;
    convProvider: 'onednn' | 'builtin';
    onednn: string;
    onednnCalls: number;
    onednnDeclined: number;
    /**
     * Plans made (one per geometry and direction) by "direction: oneDNN implementation", e.g.
     * 'forward: jit:avx512_common', or 'backward data: declined (offered …)' when none was taken.
     */
    onednnImplementations: Record<string, number>;
  };
  setProvider(provider: 'openblas' | 'builtin'): 'openblas' | 'builtin';
  /** oneDNN's convolutions (when libdnnl.so.2 loaded) or the addon's own. Returns the one in use. */
  setConvProvider(provider: 'onednn' | 'builtin'): 'onednn' | 'builtin';
  setThreads(n: number): void;
  /** C[M×N] = op(A)·op(B) + beta·C, row-major. */
  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    beta?: number,
  ): void;
  /** C[i] = op(A[i])·op(B[i]) for i < batch; strides are in floats, 0 broadcasts an operand. */
  batchGemm(
    batch: number,
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    strideA: number,
    B: Float32Array,
    strideB: number,
    C: Float32Array,
  ): void;
  conv2d(x: Float32Array, filter: Float32Array, y: Float32Array, geometry: number[]): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, geometry: number[]): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geometry: number[]): void;
  /**
   * shape = [batch, pixels, channels, groups, eps, silu ? 1 : 0, modStride?]; scale/shift [B, C] or
   * null, their row b starting at b·modStride (default channels).
   */
  groupNormAct(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    scale: Float32Array | null,
    shift: Float32Array | null,
    y: Float32Array,
    shape: number[],
  ): void;
  groupNormActGrad(
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    scale: Float32Array | null,
    shift: Float32Array | null,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
    dscale: Float32Array | null,
    dshift: Float32Array | null,
    shape: number[],
  ): void;
  /** dst[dstOffset + r·dstStride + i] = src[srcOffset + r·srcStride + i] for r < rows, i < width. */
  /** One Adam step over n values; k = [β1, 1 − β1, β2, 1 − β2, c2, ε, lr / c1]. */
  adamUpdate(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    p1: Float32Array,
    m1: Float32Array,
    v1: Float32Array,
    n: number,
    k: number[],
  ): void;
  /** Nearest 2× upsampling of x [B, H, W, C] into y [B, 2H, 2W, C], and its gradient (2×2 block sums). */
  upsample2x(x: Float32Array, y: Float32Array, B: number, H: number, W: number, C: number): void;
  upsample2xGrad(dy: Float32Array, dx: Float32Array, B: number, H: number, W: number, C: number): void;
  /** y[r, c] = (y[r, c] + bias[c]) + residual[r, c] in place (residual optional). */
  biasAdd(y: Float32Array, bias: Float32Array, residual: Float32Array | null, rows: number, channels: number): void;
  /** db[c] = Σ_r dy[r, c]. */
  biasGrad(dy: Float32Array, db: Float32Array, rows: number, channels: number): void;
  copyRows(
    dst: Float32Array,
    dstOffset: number,
    dstStride: number,
    src: Float32Array,
    srcOffset: number,
    srcStride: number,
    rows: number,
    width: number,
  ): void;
  /** Loads and initialises Open MPI (native/mpi.cc); throws when it cannot. */
  mpiInit(): { rank: number; size: number; library: string };
  /** In place over every rank (timeout in seconds, 0: none); throws on failure or timeout. */
  mpiAllreduce(buffer: Float32Array | Float64Array, op: 'sum' | 'mean' | 'min' | 'max', timeoutSeconds: number): void;
  mpiBroadcast(buffer: Float32Array | Float64Array | Uint8Array, root: number, timeoutSeconds: number): void;
  mpiAbort(code: number): never;
  mpiFinalize(): void;
}

export type LoadResult = { addon: NativeAddon; path: string } | { addon: undefined; reason: string };

let cached: LoadResult | undefined;

/** The package root, from src/ (sources) or dist/ (built). */
function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

/**
 * How to build the addon where the install script did not run (`--ignore-scripts`, npm's script
 * allow-lists) or failed: npm's rebuild runs it again; the script itself works under any manager.
 */
export function buildHint(): string {
  const script = join(packageRoot(), 'scripts', 'build-native.mjs');
  return (
    'Build it with `npm rebuild @matryoshka-ts/kernels-native --ignore-scripts=false` ' +
    '(pnpm and yarn: `rebuild @matryoshka-ts/kernels-native`), ' +
    `or directly with \`node ${script} --strict\`; it needs g++ and Node's C headers`
  );
}

/**
 * Loads the addon that the package's install script compiled (build/Release/mdm_native.node). Never throws:
 * when it is missing or fails to load, the reason says why and how to build it.
 */
export function loadAddon(): LoadResult {
  if (cached) return cached;
  const path = join(packageRoot(), 'build', 'Release', 'mdm_native.node');
  if (!existsSync(path)) {
    cached = { addon: undefined, reason: `the native addon was not built (${path} is missing). ${buildHint()}` };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    // MDM_GEMM=builtin uses the addon's own sgemm even where OpenBLAS is installed (to compare).
    if (process.env.MDM_GEMM === 'builtin' || process.env.MDM_GEMM === 'openblas')
      addon.setProvider(process.env.MDM_GEMM);
    // MDM_CONV=builtin uses the addon's own convolutions even where oneDNN is installed.
    if (process.env.MDM_CONV === 'builtin' || process.env.MDM_CONV === 'onednn')
      addon.setConvProvider(process.env.MDM_CONV);
    cached = { addon, path };
  } catch (error) {
    cached = { addon: undefined, reason: `the native addon failed to load: ${(error as Error).message}` };
  }
  return cached;
}
