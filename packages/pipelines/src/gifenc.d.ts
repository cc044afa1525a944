// The part of gifenc (https://github.com/mattdesl/gifenc, no bundled types) that video-output.ts uses.
declare module 'gifenc' {
  /** Palette colours as [r, g, b] bytes. */
  export type Palette = number[][];
  export type PaletteFormat = 'rgb565' | 'rgb444';

  export interface GifFrameOptions {
    /** Required on the first frame (it becomes the global colour table); later, a local table. */
    palette?: Palette;
    /** Frame delay in milliseconds (stored in hundredths of a second). */
    delay?: number;
    /** −1: play once, 0: loop forever (NETSCAPE2.0 extension), n: loop n more times. */
    repeat?: number;
  }

  export interface GifEncoderStream {
    writeFrame(index: Uint8Array, width: number, height: number, options?: GifFrameOptions): void;
    finish(): void;
    bytes(): Uint8Array;
  }

  export function GIFEncoder(): GifEncoderStream;
  /** A palette of at most `maxColors` colours for RGBA bytes (the array must own its buffer). */
  export function quantize(rgba: Uint8Array, maxColors: number, options?: { format?: PaletteFormat }): Palette;
  /** Each RGBA pixel's nearest palette index. */
  export function applyPalette(rgba: Uint8Array, palette: Palette, format?: PaletteFormat): Uint8Array;

  /** Node loads the CommonJS build, whose exports all arrive as the default export. */
  const commonJs: { GIFEncoder: typeof GIFEncoder; quantize: typeof quantize; applyPalette: typeof applyPalette };
  export default commonJs;
}
