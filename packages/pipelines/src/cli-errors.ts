import { isUserError } from '@matryoshka-ts/core';

/**
 * How a command-line program reports a failure: a user error (an `MdmError`: bad config, missing
 * file, corrupt checkpoint, unavailable backend) as one line `<program>: <message>`; anything else
 * is a bug, printed with its stack so it can be reported. Returns the exit code (1).
 */
export function reportError(
  program: string,
  error: unknown,
  write: (text: string) => void = (t) => process.stderr.write(t),
): number {
  if (isUserError(error)) write(`${program}: ${error.message}\n`);
  else {
    const detail = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
    write(`${program}: internal error (a bug: please report it with the lines below)\n${detail}\n`);
  }
  return 1;
}
