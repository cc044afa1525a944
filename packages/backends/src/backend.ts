import * as tf from '@tensorflow/tfjs-core';
import { BACKEND_NAMES, BackendError, type BackendName } from '@matryoshka-ts/core';
import { registerKernelOverrides } from '@matryoshka-ts/kernels';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { hardwareWebGpu, startWebGpu } from './webgpu.js';

export interface BackendOptions {
  /** Which backend to use (default `auto`). */
  backend?: BackendName;
  /** Print nothing (the choice is otherwise printed once to stderr). */
  quiet?: boolean;
}

export interface BackendInfo {
  name: Exclude<BackendName, 'auto'>;
  /** What runs underneath, for logs and reports. */
  description: string;
}

/** Packages that provide the `tensorflow` backend, fastest first. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

let active: BackendInfo | undefined;
let announced = false;
let gradientsLoaded: Promise<void> | undefined;

/**
 * Makes gradients available. tfjs-core alone registers none ("gradient function not found for
 * Sum"); tfjs-layers' Node bundle registers all of core's, then our overrides replace the ones
 * that are missing or slow on some backend.
 */
export function ensureGradients(): Promise<void> {
  gradientsLoaded ??= import('@tensorflow/tfjs-layers').then(() => registerKernelOverrides());
  return gradientsLoaded;
}

async function tryImport(specifier: string): Promise<boolean> {
  try {
    await import(/* @vite-ignore */ specifier);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return false;
    throw error;
  }
}

async function loadNative(): Promise<string | undefined> {
  for (const name of NATIVE_PACKAGES) if (await tryImport(name)) return name;
  return undefined;
}

type NativeModule = typeof import('@matryoshka-ts/kernels-native');
let nativeModule: Promise<NativeModule | undefined> | undefined;

/** The native-kernels package, or undefined when it is not installed. */
function nativeKernels(): Promise<NativeModule | undefined> {
  nativeModule ??= import('@matryoshka-ts/kernels-native').catch(() => undefined);
  return nativeModule;
}

/** Why the native kernels cannot run here, or undefined when they can. */
async function nativeUnavailable(): Promise<string | undefined> {
  const native = await nativeKernels();
  if (!native) return '@matryoshka-ts/kernels-native is not installed';
  const loaded = native.loadAddon();
  return loaded.addon ? undefined : loaded.reason;
}

async function activate(name: Exclude<BackendName, 'auto'>): Promise<BackendInfo> {
  // A plain cpu/wasm request gets tfjs's own kernels back if `native` replaced them earlier.
  if (name === 'cpu' || name === 'wasm') (await nativeKernels())?.unregisterNativeKernels(name);
  if (name === 'native') {
    const reason = await nativeUnavailable();
    if (reason) throw new BackendError(`Backend 'native' is unavailable: ${reason}. Choose --backend wasm or cpu.`);
    await activate('wasm');
    const info = (await nativeKernels())!.registerNativeKernels('wasm');
    const blas =
      info.provider === 'openblas' ? 'OpenBLAS sgemm' : 'built-in AVX2 sgemm (install libopenblas0 for more speed)';
    const kernels =
      info.convProvider === 'onednn'
        ? `oneDNN ${info.onednn} convolutions, ${blas}`
        : `built-in convolutions (install libdnnl2 for more speed), ${blas}`;
    return {
      name,
      description:
        `native (wasm + N-API convolution, matMul and GroupNorm kernels: ${kernels}, ` +
        `${info.threads} thread${info.threads === 1 ? '' : 's'})`,
    };
  }
  if (name === 'webgpu') {
    const adapter = await startWebGpu();
    return {
      name,
      description: `webgpu (Dawn: ${adapter.description}${adapter.software ? ', a software renderer: slow' : ''})`,
    };
  }
  if (name === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    // The cpu backend prints an advert for tfjs-node on its first write; we print our own line
    // instead. (Not by setting IS_TEST: that turns on tfjs's per-kernel leak checks, whose
    // bookkeeping array grows by one entry per kernel call: ~28 KB of heap per training step.)
    (tf.findBackend('cpu') as { firstUse?: boolean } | null)!.firstUse = false;
    return { name, description: 'cpu (pure JavaScript, float32)' };
  }
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) throw new BackendError('The wasm backend failed to initialise.');
    return { name, description: 'wasm (WebAssembly + XNNPACK, single-threaded in Node)' };
  }
  const pkg = await loadNative();
  if (!pkg) {
    throw new BackendError(
      "Backend 'tensorflow' needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node, " +
        'and neither is installed. ' +
        'Install one next to your app (`npm i @tensorflow/tfjs-node-gpu@4.22.0`, or pnpm add / yarn add; ' +
        'its installer downloads libtensorflow), ' +
        'or choose --backend wasm / cpu.',
    );
  }
  if (!(await tf.setBackend('tensorflow')))
    throw new BackendError(`${pkg} is installed but its backend failed to start.`);
  return { name: 'tensorflow', description: `tensorflow (${pkg}, libtensorflow)` };
}

/**
 * Whether Dawn could reach a GPU here: on Linux a Vulkan loader and a GPU device node (a DRM
 * render node, or NVIDIA's). A machine with only a software Vulkan driver (lavapipe, for tests)
 * has neither node, so `auto` does not even load Dawn there (and prints none of its warnings).
 */
function mayHaveGpu(): boolean {
  if (process.platform !== 'linux') return true;
  const node = (dir: string, pattern: RegExp) => {
    try {
      return readdirSync(dir).some((name) => pattern.test(name));
    } catch {
      return false;
    }
  };
  if (!node('/dev/dri', /^renderD\d+$/) && !node('/dev', /^nvidia\d+$/)) return false;
  const ldconfig = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  return ldconfig.status === 0 ? ldconfig.stdout.includes('libvulkan.so.1') : true;
}

/**
 * Selects and initialises the tfjs backend at run time and registers gradients. Libraries never
 * call this; apps and tests do, once, before building models.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const requested = options.backend ?? 'auto';
  if (!(BACKEND_NAMES as readonly string[]).includes(requested)) {
    throw new BackendError(
      `Unknown backend '${requested}': choose ${BACKEND_NAMES.slice(0, -1).join(', ')} or tensorflow.`,
    );
  }
  await ensureGradients();
  let info: BackendInfo;
  // Why `auto` passed over the native kernels, said once: an addon that was never built (install
  // scripts blocked) must not silently cost a 2× slower step.
  let skippedNative: string | undefined;
  if (requested === 'auto') {
    // Fastest first: libtensorflow (CUDA when present), a GPU through WebGPU, our native kernels,
    // WebAssembly, pure JS.
    if (await loadNative()) info = await activate('tensorflow');
    else if (await hardwareWebGpu(mayHaveGpu())) info = await activate('webgpu');
    else {
      skippedNative = await nativeUnavailable();
      if (!skippedNative) info = await activate('native');
      else {
        try {
          info = await activate('wasm');
        } catch {
          info = await activate('cpu');
        }
      }
    }
  } else {
    info = await activate(requested);
  }
  active = info;
  if (!options.quiet && !announced) {
    announced = true;
    process.stderr.write(`[matryoshka-ts] backend: ${info.description}\n`);
    if (skippedNative) process.stderr.write(`[matryoshka-ts] not using the native kernels: ${skippedNative}\n`);
  }
  return info;
}

/**
 * The native addon's own report when it is loaded: sgemm and convolution providers, oneDNN's
 * version, the convolutions it ran and declined, and which oneDNN implementation each direction
 * planned with (`onednnImplementations`). For benchmarks and diagnostics; undefined otherwise.
 */
export async function nativeKernelInfo(): Promise<
  ReturnType<NonNullable<ReturnType<NativeModule['loadAddon']>['addon']>['info']> | undefined
> {
  return (await nativeKernels())?.loadAddon().addon?.info();
}

/** The backend chosen by the last `initBackend` call, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}
