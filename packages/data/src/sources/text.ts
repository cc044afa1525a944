const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Captions as UTF-8, strictly: undefined for bytes that are not valid UTF-8 (a Latin-1 or
 * Windows-1252 caption, a cut multi-byte sequence) so the sample is counted and skipped rather than
 * trained on with U+FFFD in its text. A leading byte-order mark is dropped.
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
