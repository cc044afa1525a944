/**
 * Text from a file, made fit for a one-line error message: control characters escaped (a damaged
 * name or header may hold newlines) and long text cut short (a header may be 64 KiB).
 */
export function printable(text: string, max = 80): string {
  const escaped = text
    .slice(0, max + 1)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
    .replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}
