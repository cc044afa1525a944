// The tfjs backend the page samples on: WebGPU where the browser gives an adapter, else WebGL,
// else WebAssembly (its binaries are served with the page). Each backend's code loads only when tried.
import * as tf from '@tensorflow/tfjs-core';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

export const BACKENDS = ['webgpu', 'webgl', 'wasm'] as const;
export type PageBackend = (typeof BACKENDS)[number];

const load: Record<PageBackend, () => Promise<unknown>> = {
  webgpu: () => import('@tensorflow/tfjs-backend-webgpu'),
  webgl: () => import('@tensorflow/tfjs-backend-webgl'),
  wasm: async () => {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths({
      'tfjs-backend-wasm.wasm': wasmPlain,
      'tfjs-backend-wasm-simd.wasm': wasmSimd,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
    });
  },
};

/** What the page runs on, and why the faster ones were passed over. */
export interface ChosenBackend {
  name: PageBackend;
  /** e.g. `webgpu: did not initialise`, for the status line. */
  skipped: string[];
  /** WebGL's renderer, where it says (e.g. a GPU's name, or SwiftShader). */
  renderer?: string;
}

/** The renderer behind WebGL, where the browser names it. */
function webglRenderer(): string | undefined {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return undefined;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

/** Why WebGPU cannot run here (no API, no adapter, a software one where others may do), if it can't. */
async function webgpuProblem(others: boolean): Promise<string | undefined> {
  type Adapter = { info?: { isFallbackAdapter?: boolean } } | null;
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<Adapter> } }).gpu;
  if (!gpu) return 'this browser has no WebGPU';
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return 'no adapter';
  if (others && adapter.info?.isFallbackAdapter) return 'a software adapter, slower than wasm';
  return undefined;
}

/** A renderer that emulates a GPU on the CPU: WebAssembly samples several times faster there. */
const SOFTWARE = /swiftshader|llvmpipe|softpipe|software/i;

/**
 * Starts the first backend of `order` that initialises here (default WebGPU, WebGL, wasm; WebGL
 * on a software renderer is passed over, as slower than wasm): a `?backend=` in the page's URL asks
 * for one (then only that one is tried, whatever its renderer).
 */
export async function chooseBackend(order: readonly PageBackend[] = BACKENDS): Promise<ChosenBackend> {
  const skipped: string[] = [];
  const renderer = order.includes('webgl') ? webglRenderer() : undefined;
  for (const name of order) {
    if (name === 'webgpu') {
      const problem = await webgpuProblem(order.length > 1);
      if (problem) {
        skipped.push(`webgpu: ${problem}`);
        continue;
      }
    }
    if (name === 'webgl' && order.length > 1 && renderer && SOFTWARE.test(renderer)) {
      skipped.push(`webgl: a software renderer (${renderer}), slower than wasm`);
      continue;
    }
    try {
      await load[name]();
      if (await tf.setBackend(name)) {
        await tf.ready();
        return { name, skipped, renderer: name === 'webgl' ? renderer : undefined };
      }
      skipped.push(`${name}: did not initialise`);
    } catch (error) {
      skipped.push(`${name}: ${(error as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend runs here (${skipped.join('; ')})`);
}
