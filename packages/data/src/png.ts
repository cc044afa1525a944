import { PNG } from 'pngjs';
import { ImageTooLargeError, MAX_INPUT_PIXELS, checkPixelLimit } from './image-limit.js';

/** An 8-bit RGB image, row-major [H, W, 3]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Decodes a PNG (any colour type, palette with transparency included) to RGB, compositing
 * transparent pixels over `background`. Throws on a corrupt or truncated file, and an
 * `ImageTooLargeError` before decoding when the header declares more than `maxPixels` pixels
 * (pngjs has no limit of its own: a 68-byte PNG declaring 30000×30000 would allocate gigabytes).
 */
export function decodePng(
  bytes: Uint8Array,
  background: [number, number, number] = [255, 255, 255],
  maxPixels = MAX_INPUT_PIXELS,
): RgbImage {
  const declared = pngSize(bytes);
  if (declared && declared.width * declared.height > checkPixelLimit(maxPixels))
    throw new ImageTooLargeError(declared.width, declared.height, maxPixels);
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const { width, height, data } = png; // RGBA, 8 bits per channel
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    const a = data[i + 3] / 255;
    for (let c = 0; c < 3; c++) out[j + c] = Math.round(data[i + c] * a + background[c] * (1 - a));
  }
  return { width, height, data: out };
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The size an IHDR chunk declares (it must come first), or undefined when the bytes do not start so. */
function pngSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  if (bytes.length < 24 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return undefined;
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Encodes an RGB image as PNG bytes. */
export function encodePng(image: RgbImage): Uint8Array {
  const png = new PNG({
    width: image.width,
    height: image.height,
    colorType: 2,
    inputColorType: 2,
    inputHasAlpha: false,
  });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return new Uint8Array(PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
}

/** Box-filter downsampling by an integer factor (each output pixel is the mean of a factor×factor block). */
export function downsampleBox(image: RgbImage, factor: number): RgbImage {
  if (factor === 1) return image;
  if (image.width % factor || image.height % factor)
    throw new Error(`cannot downsample ${image.width}×${image.height} by ${factor}`);
  const w = image.width / factor;
  const h = image.height / factor;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < factor; dy++)
          for (let dx = 0; dx < factor; dx++)
            s += image.data[((y * factor + dy) * image.width + x * factor + dx) * 3 + c];
        out[(y * w + x) * 3 + c] = Math.round(s / (factor * factor));
      }
  return { width: w, height: h, data: out };
}
