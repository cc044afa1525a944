// Reading a config file (JSON or YAML) from disk: the Node half of the run config (config.ts,
// which a web page imports through `@matryoshka-ts/pipelines/browser`, needs no file system).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '@matryoshka-ts/core';
import { jsonSyntaxError } from './json-position.js';

/** What a parsed file holds, for a message: `a list`, `a string ("hello")`, `nothing`. */
function describeValue(data: unknown): string {
  if (data === null || data === undefined) return 'nothing (the file is empty or null)';
  if (Array.isArray(data)) return `a list (${data.length} entries)`;
  if (typeof data === 'string')
    return `a string (${JSON.stringify(data.length > 30 ? `${data.slice(0, 30)}…` : data)})`;
  return `a ${typeof data} (${String(data)})`;
}

/** Why a file could not be read, from its system error code. */
function readFailure(error: unknown): string {
  const code = (error as { code?: string }).code;
  const known: Record<string, string> = {
    ENOENT: 'no such file',
    EISDIR: 'it is a directory',
    EACCES: 'permission denied',
  };
  return code && known[code] ? `${known[code]} (${code})` : (error as Error).message.split('\n')[0];
}

/**
 * Reads a JSON or YAML (`.yaml`, `.yml`) config file holding an object. Errors are one line naming
 * the file, and for a syntax error the line and column.
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch (error) {
    throw new ConfigError(`${path}: cannot read the config file: ${readFailure(error)}`, { cause: error });
  }
  let data: unknown;
  if (/\.ya?ml$/i.test(path)) {
    try {
      data = parseYaml(text);
    } catch (error) {
      const e = error as Error & { linePos?: Array<{ line: number; col: number }> };
      const first = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      const reason = first.charAt(0).toLowerCase() + first.slice(1);
      const at = e.linePos?.[0];
      const where = at ? ` at line ${at.line}, column ${at.col}` : '';
      throw new ConfigError(`${path}: invalid YAML${where}: ${reason}`, { cause: error });
    }
  } else {
    try {
      data = JSON.parse(text);
    } catch (error) {
      const at = jsonSyntaxError(text, error as Error);
      throw new ConfigError(`${path}: invalid JSON at line ${at.line}, column ${at.column}: ${at.reason}`, {
        cause: error,
      });
    }
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new ConfigError(
      `${path}: a config file must hold an object of config fields (e.g. {"phases": [...]}), ` +
        `this one holds ${describeValue(data)}`,
    );
  return data as Record<string, unknown>;
}
