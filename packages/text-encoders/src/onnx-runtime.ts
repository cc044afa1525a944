import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { BackendError, DataError, isSoftwareRenderer } from '@matryoshka-ts/core';

// onnxruntime-node is an optional peer dependency: its installer downloads CUDA files from outside
// the npm registry, so a default install of our packages must not pull it in. The part of its API
// we use is declared here, so that no published .d.ts imports it (a consumer without it would fail
// `tsc` without skipLibCheck); onnx-runtime.types.test.ts checks that the real module fits.

/** An ONNX Runtime tensor, as far as this project reads one. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  dispose(): void;
}

/** What a session reports about one input or output (onnxruntime ≥ 1.22; older ones give none). */
export type OrtValueMetadata =
  | {
      readonly name: string;
      readonly isTensor: true;
      readonly type: string;
      readonly shape: readonly (number | string)[];
    }
  | { readonly name: string; readonly isTensor: false };

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  readonly outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>, fetches: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

/** The onnxruntime-node module: tensors, sessions, and the execution providers its binary holds. */
export interface OrtRuntime {
  Tensor: {
    new (type: 'float32', data: Float32Array, dims: readonly number[]): OrtTensor;
    new (type: 'int32', data: Int32Array, dims: readonly number[]): OrtTensor;
    new (type: 'int64', data: BigInt64Array, dims: readonly number[]): OrtTensor;
  };
  InferenceSession: {
    create(model: string | Uint8Array, options: { executionProviders: string[] }): Promise<OrtSession>;
  };
  /** The providers in this binary (`bundled`) or installable next to it (CUDA); absent before 1.18. */
  listSupportedBackends?: () => readonly { readonly name: string; readonly bundled: boolean }[];
  readonly env?: { readonly versions: { readonly common: string } };
}

/**
 * Where each session may run: `cuda` (NVIDIA, CUDA 12) or `webgpu` (any GPU through ONNX Runtime's
 * built-in Dawn: Vulkan on Linux, D3D12 on Windows, Metal on macOS) put the CPU after them, for
 * the few operators they lack.
 */
export type OnnxDevice = 'cpu' | 'cuda' | 'webgpu';

/** Every OnnxDevice, for command-line choices and config schemas. */
export const ONNX_DEVICES: readonly OnnxDevice[] = ['cpu', 'cuda', 'webgpu'];

export const ONNX_RUNTIME_INSTALL_HINT =
  'Install it next to your app: `ONNXRUNTIME_NODE_INSTALL=skip npm i onnxruntime-node` ' +
  '(or `pnpm add` / `yarn add` with the same variable). The CPU build is in the npm package; ' +
  'the variable skips its installer, which otherwise downloads CUDA files from outside the npm registry.';

/**
 * ONNX Runtime for Node, imported on first use. Needed only for ONNX models: frozen text encoders,
 * Inception and CLIP for FID and CLIP scores, I3D for FVD, LPIPS.
 */
export async function onnxRuntime(): Promise<OrtRuntime> {
  // A variable, so that bundlers and tsc leave the optional import alone.
  const name = 'onnxruntime-node';
  try {
    return (await import(name)) as OrtRuntime;
  } catch (error) {
    const why = (error as Error).message.split('\n')[0];
    throw new BackendError(
      `onnxruntime-node is needed to run ONNX models and could not be loaded (${why}). ${ONNX_RUNTIME_INSTALL_HINT}`,
      { cause: error },
    );
  }
}

/** An ONNX model file and its content hash (ids name the exact weights, not the file name). */
export function readOnnxFile(path: string): { bytes: Uint8Array; tag: string } {
  if (!existsSync(path)) throw new DataError(`no ONNX model at ${path}`);
  const bytes = new Uint8Array(readFileSync(path));
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  return { bytes, tag: `${basename(path)}#${hash}` };
}

const providers = (device: OnnxDevice) => (device === 'cpu' ? ['cpu'] : [device, 'cpu']);

/** A session on a model's bytes, on the CPU or, when `device` asks for it, on CUDA or WebGPU. */
export async function onnxSession(bytes: Uint8Array, device: OnnxDevice = 'cpu'): Promise<OrtSession> {
  return createSession(bytes, device, 'an ONNX model');
}

/**
 * A session on a model FILE (not its bytes: large encoders keep their weights in external data
 * files next to the graph, which ONNX Runtime finds relative to the model's path).
 */
export async function onnxSessionFromFile(path: string, device: OnnxDevice = 'cpu'): Promise<OrtSession> {
  try {
    return await createSession(path, device, path);
  } catch (error) {
    if (error instanceof BackendError) throw error;
    throw new DataError(`ONNX Runtime could not load ${path}: ${(error as Error).message}`);
  }
}

/**
 * Creates the session, turning a device that cannot start into a BackendError that says what to
 * install, and prints the device (with the WebGPU adapter) when the first session on it starts.
 */
async function createSession(model: string | Uint8Array, device: OnnxDevice, what: string): Promise<OrtSession> {
  if (!(ONNX_DEVICES as readonly string[]).includes(device))
    throw new BackendError(`unknown ONNX Runtime device '${device}' (use ${ONNX_DEVICES.join(', ')})`);
  const ort = await onnxRuntime();
  if (device === 'webgpu') checkWebGpuProvider(ort);
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: providers(device) });
  } catch (error) {
    const message = (error as Error).message;
    if (device === 'cuda' && /cuda|providers_shared|shared library/i.test(message)) {
      throw new BackendError(
        `ONNX Runtime could not start CUDA for ${what} (${message.split('\n')[0]}). ` +
          `The npm package ships the CPU build only; ` +
          `the CUDA provider libraries (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so) ` +
          `are fetched by its install script with ONNXRUNTIME_NODE_INSTALL=cuda12 ` +
          `and need CUDA 12 + cuDNN 9 on the machine. Use device: 'cpu' otherwise.`,
        { cause: error },
      );
    }
    if (device === 'webgpu' && /WebGPU (adapter|device)|webgpu_context/i.test(message))
      throw new BackendError(noWebGpuAdapter(message), { cause: error });
    throw error;
  }
  if (!announced.has(device)) {
    announced.add(device);
    process.stderr.write(`[matryoshka-ts] onnx: ${await describeOnnxDevice(device, ort)}\n`);
  }
  return session;
}

/** Devices whose line has been printed in this process (once each, as backends prints its choice). */
const announced = new Set<OnnxDevice>();

function checkWebGpuProvider(ort: OrtRuntime): void {
  const list = ort.listSupportedBackends?.();
  if (!list || list.some((b) => b.name === 'webgpu')) return;
  throw new BackendError(
    `onnxruntime-node ${ort.env?.versions.common ?? ''} for ${process.platform}-${process.arch} has no WebGPU ` +
      `execution provider (it has ${list.map((b) => b.name).join(', ')}). Its prebuilt binaries hold one on ` +
      `Linux x64, Windows and macOS (not Linux arm64); use device 'cpu' here.`,
  );
}

/** Whether a Vulkan loader is installed (ONNX Runtime's Dawn reaches GPUs through it on Linux). */
function hasVulkanLoader(): boolean {
  const ldconfig = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  return ldconfig.status === 0 ? ldconfig.stdout.includes('libvulkan.so.1') : true;
}

/** What to install when ONNX Runtime's Dawn finds no adapter, by platform. */
function noWebGpuAdapter(message: string): string {
  const why = message.split('\n')[0].replace(/^.*?(Failed to get a WebGPU)/, '$1');
  const head = `ONNX Runtime's WebGPU provider found no adapter (${why}). `;
  if (process.platform !== 'linux') {
    const api = process.platform === 'darwin' ? 'Metal' : 'D3D12 or Vulkan';
    return `${head}It needs a GPU whose driver offers ${api}. Use device 'cpu' otherwise.`;
  }
  return (
    head +
    (hasVulkanLoader()
      ? ''
      : 'The Vulkan loader (libvulkan.so.1) is missing: install libvulkan1 (tooling/scripts/native-libs.sh does). ') +
    "On Linux its Dawn reaches the GPU through Vulkan, and needs the GPU driver's Vulkan ICD (NVIDIA's driver " +
    'ships one; AMD and Intel: mesa-vulkan-drivers). A software adapter (lavapipe: slow, for tests) needs ' +
    'Mesa ≥ 23 (mesa-vulkan-drivers on Debian 13 or Ubuntu 24.04; on Debian 12 tooling/scripts/lavapipe.sh ' +
    "fetches bookworm-backports' one, used with VK_ADD_DRIVER_FILES=~/.cache/matryoshka-ts/lavapipe/lvp_icd.json). " +
    "Use device 'cpu' otherwise."
  );
}

/** A WebGPU adapter's name, and whether it is a software renderer. */
export interface OnnxWebGpuAdapter {
  description: string;
  software: boolean;
}

/**
 * The adapter ONNX Runtime's WebGPU provider runs on, as far as it can be named: ONNX Runtime does
 * not report it, so the optional `webgpu` package (Dawn's Node bindings, as the `webgpu` tfjs
 * backend uses) asks the same drivers for the same adapter (high performance first; Vulkan on
 * Linux). Undefined when that package is not installed or finds none.
 */
export async function onnxWebGpuAdapter(): Promise<OnnxWebGpuAdapter | undefined> {
  const found = await findAdapter();
  return typeof found === 'string' ? undefined : found;
}

async function findAdapter(): Promise<OnnxWebGpuAdapter | 'no package' | 'none'> {
  interface Info {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter?: boolean;
  }
  interface Gpu {
    requestAdapter(o: { powerPreference: string }): Promise<{ info: Info; isFallbackAdapter?: boolean } | null>;
  }
  let dawn: { create(flags: string[]): Gpu };
  try {
    // A variable, so that bundlers and tsc leave the optional import alone.
    const name = 'webgpu';
    dawn = (await import(name)) as typeof dawn;
  } catch {
    return 'no package';
  }
  try {
    const gpu = dawn.create(process.platform === 'linux' ? ['backend=vulkan'] : []);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return 'none';
    const { vendor, architecture, device, description } = adapter.info;
    const text = (description || [vendor, architecture, device].filter(Boolean).join(' ')).replace(/\s+/g, ' ').trim();
    return {
      description: text || 'an unnamed adapter',
      software:
        Boolean(adapter.isFallbackAdapter ?? adapter.info.isFallbackAdapter) ||
        isSoftwareRenderer(`${vendor} ${architecture} ${device} ${description}`),
    };
  } catch {
    return 'none';
  }
}

/**
 * A device in words, as printed when the first session on it starts, e.g.
 * `webgpu (ONNX Runtime 1.30.0's Dawn on Vulkan: NVIDIA …; cpu for the operators it lacks)`.
 */
export async function describeOnnxDevice(device: OnnxDevice, runtime?: OrtRuntime): Promise<string> {
  const ort = runtime ?? (await onnxRuntime());
  const version = ort.env?.versions.common;
  const ortName = version ? `ONNX Runtime ${version}` : 'ONNX Runtime';
  if (device === 'cpu') return `cpu (${ortName})`;
  if (device === 'cuda') return `cuda (${ortName}'s CUDA provider; cpu for the operators it lacks)`;
  const adapter = await findAdapter();
  const on = process.platform === 'linux' ? ' on Vulkan' : '';
  const named =
    adapter === 'no package'
      ? 'adapter not named (the optional webgpu package names it)'
      : adapter === 'none'
        ? 'adapter not named (the webgpu package found none)'
        : `${adapter.description}${adapter.software ? ', a software renderer: slow' : ''}`;
  return `webgpu (${ortName}'s Dawn${on}: ${named}; cpu for the operators it lacks)`;
}
