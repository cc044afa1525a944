/**
 * Where JSON text first goes wrong: 1-based line and column, and the reason (`JSON.parse`'s own
 * message gives no position for most errors on Node 20). Undefined for valid JSON, unless
 * `JSON.parse`'s `error` is given: should the two ever disagree, its position is used.
 */
export function jsonSyntaxError(text: string): { line: number; column: number; reason: string } | undefined;
export function jsonSyntaxError(text: string, error: Error): { line: number; column: number; reason: string };
export function jsonSyntaxError(text: string, error?: Error) {
  const found = scanJson(text);
  if (!found && !error) return undefined;
  const offset = found?.offset ?? Number(error?.message.match(/at position (\d+)/)?.[1] ?? text.length);
  const reason = found?.reason ?? error?.message.split('\n')[0].replace(/, ".*$/, '') ?? 'invalid JSON';
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column, reason };
}

/** A JSON syntax checker (RFC 8259): the offset of the first error and what was expected there. */
function scanJson(text: string): { offset: number; reason: string } | undefined {
  let i = 0;
  const fail = (expected: string, reason?: string): never => {
    const ch = text[i];
    const seen = ch === undefined ? 'end of file' : `'${ch === '\n' ? '\\n' : ch}'`;
    throw { offset: i, reason: reason ?? `unexpected ${seen} (expected ${expected})` };
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const string = () => {
    i++;
    while (text[i] !== '"') {
      if (i >= text.length) fail('a closing "');
      const code = text.charCodeAt(i);
      if (code < 0x20) fail('', 'a line break or control character inside a string (write it as \\n or \\t)');
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          const hex = /^[0-9a-fA-F]{0,4}/.exec(text.slice(i + 1, i + 5))![0].length;
          i += 1 + hex;
          if (hex < 4) fail('4 hex digits after \\u');
          i--;
        } else if (i >= text.length || !'"\\/bfnrt'.includes(text[i])) {
          fail('an escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX');
        }
      }
      i++;
    }
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail('a value');
    i += m![0].length;
  };
  const value = (): void => {
    space();
    const ch = text[i];
    if (ch === '{') {
      i++;
      space();
      if (text[i] === '}') return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail('a property name in double quotes');
        string();
        space();
        if (text[i] !== ':') fail("':' after the property name");
        i++;
        value();
        space();
        if (text[i] === '}') return void i++;
        if (text[i] !== ',') fail("',' or '}' after a property value");
        i++;
        space();
        if (text[i] === '}') fail('', "a comma before '}' (JSON allows no trailing comma)");
      }
    }
    if (ch === '[') {
      i++;
      space();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        space();
        if (text[i] === ']') return void i++;
        if (text[i] !== ',') fail("',' or ']' after a list entry");
        i++;
        space();
        if (text[i] === ']') fail('', "a comma before ']' (JSON allows no trailing comma)");
      }
    }
    if (ch === '"') {
      string();
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) number();
    else fail('a value');
  };
  try {
    value();
    space();
    if (i < text.length) fail('the end of the file after the value');
    return undefined;
  } catch (error) {
    if (typeof error === 'object' && error && 'offset' in error) return error as { offset: number; reason: string };
    throw error;
  }
}
