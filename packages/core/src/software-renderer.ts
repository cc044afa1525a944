/**
 * Whether a GPU adapter's name (vendor, architecture, device, description) is a renderer that
 * runs on the CPU: Mesa's llvmpipe / lavapipe / softpipe, Google's SwiftShader. Such an adapter
 * is never chosen automatically (it is far slower than the CPU backends); tests ask for it.
 */
export function isSoftwareRenderer(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|softpipe/i.test(name);
}
