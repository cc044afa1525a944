import * as tf from '@tensorflow/tfjs-core';
import { BackendError, isSoftwareRenderer } from '@matryoshka-ts/core';
import { splitWebGpuAddN } from './webgpu-add-n.js';

/** The part of a WebGPU adapter we read (the `webgpu` package's Dawn adapter, or a browser's). */
interface GpuAdapter {
  readonly info: { vendor: string; architecture: string; device: string; description: string };
  readonly isFallbackAdapter?: boolean;
  readonly limits: Record<string, number>;
  requestDevice(descriptor: { requiredLimits: Record<string, number> }): Promise<GpuDevice>;
}
interface GpuDevice {
  readonly limits: Record<string, number>;
  onuncapturederror: ((event: { error: { message: string } }) => void) | null;
}

/** WebGPU validation and out-of-memory errors since the backend started (tfjs does not surface them). */
const deviceErrors: string[] = [];

/**
 * The errors the WebGPU device reported since `initBackend({ backend: 'webgpu' })`, oldest first:
 * a kernel that fails validation computes nothing, and tfjs returns its unwritten buffer as the
 * result, so a test or a benchmark checks that this stays empty.
 */
export function webGpuErrors(): readonly string[] {
  return deviceErrors;
}
interface Gpu {
  requestAdapter(options?: { featureLevel?: string; powerPreference?: string }): Promise<GpuAdapter | null>;
}

/** What `startWebGpu` found: the adapter, and whether it is a software renderer. */
export interface WebGpuAdapter {
  description: string;
  software: boolean;
}

/** The limits tfjs-backend-webgpu's own start asks for (its kernels use 256-wide workgroups). */
const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
];

const INSTALL =
  'Install them next to your app (`npm i webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0`, or pnpm add / yarn add)';

/**
 * Dawn's instances, one per MDM_WEBGPU_BACKEND value, kept for the life of the process: an
 * instance that is garbage-collected while its event processing is still scheduled crashes the
 * process (a segfault in dawn::native::InstanceBase::ProcessEvents, seen after a second start).
 */
const instances = new Map<string, Gpu>();

/** The backend `startWebGpu` registered, for which Dawn backend, and its adapter. */
let started: { key: string; factory: unknown; adapter: WebGpuAdapter } | undefined;

/**
 * Finds a WebGPU adapter through Dawn's Node bindings (the `webgpu` package: `dawn.node` ships in
 * its tarball, nothing is downloaded). `MDM_WEBGPU_BACKEND` picks Dawn's backend (`vulkan`, the
 * default on Linux; `opengl` for Mesa's software llvmpipe, headless through EGL's surfaceless
 * platform). Undefined when Dawn finds none, or the package is not installed and `required` is false.
 */
async function findAdapter(required: boolean): Promise<{ gpu: Gpu; adapter: GpuAdapter } | undefined> {
  let dawn: { create(flags: string[]): Gpu; globals: Record<string, unknown> };
  try {
    dawn = (await import(/* @vite-ignore */ 'webgpu')) as unknown as typeof dawn;
  } catch (error) {
    if (!required) return undefined;
    throw new BackendError(
      `Backend 'webgpu' needs the webgpu and @tensorflow/tfjs-backend-webgpu packages. ${INSTALL}.`,
      {
        cause: error,
      },
    );
  }
  const backend = process.env.MDM_WEBGPU_BACKEND;
  // Mesa's EGL needs a platform without a display server; surfaceless is the one that has none.
  if (backend === 'opengl' || backend === 'opengles') process.env.EGL_PLATFORM ??= 'surfaceless';
  let gpu = instances.get(backend ?? '');
  if (!gpu) {
    gpu = dawn.create(backend ? [`backend=${backend}`] : []);
    instances.set(backend ?? '', gpu);
  }
  // Dawn's OpenGL backend offers only WebGPU's compatibility profile.
  const featureLevel = backend?.startsWith('opengl') ? 'compatibility' : 'core';
  const adapter = await gpu.requestAdapter({ featureLevel, powerPreference: 'high-performance' });
  if (!adapter) return undefined;
  // tfjs-backend-webgpu reads WebGPU's globals (GPUBufferUsage, …) and navigator.gpu.
  Object.assign(globalThis, dawn.globals);
  const nav = ((globalThis as { navigator?: object }).navigator ?? {}) as { gpu?: Gpu };
  if (!(globalThis as { navigator?: object }).navigator)
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  return { gpu, adapter };
}

function describe(adapter: GpuAdapter): WebGpuAdapter {
  const { vendor, architecture, device, description } = adapter.info;
  const name = [vendor, architecture, device, description].filter(Boolean).join(' ').replace(/\s+/g, ' ').trim();
  return {
    description: name || 'unnamed adapter',
    software: Boolean(adapter.isFallbackAdapter) || isSoftwareRenderer(name),
  };
}

/**
 * Whether `auto` may use WebGPU: a hardware adapter found through Dawn. Dawn is not even loaded
 * where the machine shows no GPU (`mayHaveGpu` false: no Vulkan loader or no GPU device node), so
 * `auto` costs nothing there and prints no Dawn warning.
 */
export async function hardwareWebGpu(mayHaveGpu: boolean): Promise<boolean> {
  if (!mayHaveGpu && !process.env.MDM_WEBGPU_BACKEND) return false;
  const found = await findAdapter(false).catch(() => undefined);
  return Boolean(found && !describe(found.adapter).software);
}

/**
 * Starts tfjs's `webgpu` backend on Dawn's adapter, with the adapter's limits (as the backend's
 * own start asks for them). A software adapter runs when asked for by name; `auto` never picks
 * one. Reads on this backend must be asynchronous (`await t.data()`): `dataSync` needs a browser's
 * OffscreenCanvas.
 */
export async function startWebGpu(): Promise<WebGpuAdapter> {
  // Started before in this process (a switch to cpu and back): the same device, no new one.
  const key = process.env.MDM_WEBGPU_BACKEND ?? '';
  if (started?.key === key && tf.findBackendFactory('webgpu') === started.factory) {
    if (!(await tf.setBackend('webgpu'))) throw new BackendError('The webgpu backend failed to initialise.');
    return started.adapter;
  }
  const found = await findAdapter(true);
  if (!found)
    throw new BackendError(
      "Backend 'webgpu' found no WebGPU adapter: on Linux Dawn needs libvulkan1 and the GPU driver's Vulkan ICD; " +
        "MDM_WEBGPU_BACKEND=opengl uses Mesa's software renderer (slow, for tests).",
    );
  let webgpu: { WebGPUBackend: new (device: unknown, info: unknown) => tf.KernelBackend };
  try {
    webgpu = (await import(/* @vite-ignore */ '@tensorflow/tfjs-backend-webgpu')) as unknown as typeof webgpu;
  } catch (error) {
    throw new BackendError(`Backend 'webgpu' needs @tensorflow/tfjs-backend-webgpu. ${INSTALL}.`, { cause: error });
  }
  const { adapter } = found;
  const requiredLimits = Object.fromEntries(LIMITS.map((k) => [k, adapter.limits[k]]));
  const device = await adapter.requestDevice({ requiredLimits });
  deviceErrors.length = 0;
  device.onuncapturederror = (event) => {
    if (deviceErrors.length < 100) deviceErrors.push(event.error.message);
  };
  // The package registered a factory that asks navigator.gpu for an adapter with its own
  // options; ours is the adapter chosen here (compatibility profile, limits).
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  const factory = () => new webgpu.WebGPUBackend(device, adapter.info);
  tf.registerBackend('webgpu', factory);
  if (!(await tf.setBackend('webgpu'))) throw new BackendError('The webgpu backend failed to initialise.');
  splitWebGpuAddN(device.limits.maxStorageBuffersPerShaderStage ?? 8);
  started = { key, factory, adapter: describe(adapter) };
  return started.adapter;
}
