import { DataError } from '@matryoshka-ts/core';

/**
 * The most pixels (width × height) an input image may declare: sharp's own default
 * (16383 × 16383 ≈ 268 megapixels), stated here so both decoders (sharp for the streamed sources,
 * pngjs for the bundled emoji) apply it and a bigger image is counted as 'image too large' rather
 * than as a corrupt one. A header can declare such a size in a few dozen bytes; decoding it would
 * allocate gigabytes.
 */
export const MAX_INPUT_PIXELS = 0x3fff * 0x3fff;

/** Skip reason for an image whose declared size is over the pixel limit. */
export const IMAGE_TOO_LARGE = 'image too large';

/** An image whose header declares more pixels than the decoder's limit; nothing was decoded. */
export class ImageTooLargeError extends DataError {
  readonly pixels: number;
  constructor(
    readonly width: number,
    readonly height: number,
    readonly limit: number,
    options?: { cause?: unknown },
  ) {
    const pixels = width * height;
    super(`${IMAGE_TOO_LARGE}: ${width}×${height} = ${pixels} pixels, over the limit of ${limit}`, options);
    this.pixels = pixels;
  }
}

/** `limit`, checked: a positive integer (else a plain Error, as for other bad arguments: a bug, not the data). */
export function checkPixelLimit(limit: number): number {
  if (!(Number.isSafeInteger(limit) && limit > 0))
    throw new Error(`maxPixels must be a positive integer, got ${limit}`);
  return limit;
}
