import { basename } from 'node:path';

/** Encoded image types the decoder (libvips via sharp) reads, by extension, lower case. */
export const IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'png', 'webp'];

/** True for a file or member name with an image extension (any case: ImageNet's are `.JPEG`). */
export function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot >= 0 && IMAGE_EXTENSIONS.includes(name.slice(dot + 1).toLowerCase());
}

/** The file name without its directory and its final extension: `train/n01/n01_10026.JPEG` → `n01_10026`. */
export function stem(path: string): string {
  const name = basename(path);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/**
 * Splits a webdataset member name into sample key and extension the way webdataset does: at the
 * FIRST dot of the file name (`dir/000123.seg.png` → `dir/000123` + `seg.png`), so multi-part
 * extensions stay with their sample. Extensions are compared in lower case.
 */
export function splitKey(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}
