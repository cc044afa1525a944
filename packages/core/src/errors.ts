/**
 * Stable codes of the errors a user can cause and fix (a bad config, a missing file, a corrupt
 * checkpoint, an unavailable backend). Programs match on `code`, never on message text.
 */
export type MdmErrorCode =
  | 'CONFIG_INVALID'
  | 'DATA_INVALID'
  | 'CHECKPOINT_INVALID'
  | 'CHECKPOINT_MISSING'
  | 'BACKEND_UNAVAILABLE'
  | 'TRAINING_DIVERGED'
  | 'WRITE_FAILED';

/**
 * The base of every error this project throws on purpose: a user error with a stable `code` and
 * a message that says what to change. A command-line program prints such an error as one line
 * and exits 1; anything else is a bug and keeps its stack (see `isUserError`).
 */
export class MdmError extends Error {
  constructor(
    readonly code: MdmErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A config (training, model, sampling) that fails validation; the message names the field. */
export class ConfigError extends MdmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options);
  }
}

/**
 * A file that could not be written (a full disk, no permission); the message names the file and
 * the system's reason (ENOSPC, EACCES, …), and what was written before it is intact.
 */
export class WriteError extends MdmError {
  constructor(path: string, cause: unknown) {
    const code = (cause as { code?: string } | undefined)?.code;
    const why = code === 'ENOSPC' ? 'the disk is full (ENOSPC)' : ((cause as Error)?.message ?? String(cause));
    super('WRITE_FAILED', `cannot write ${path}: ${why}`, { cause });
  }
}

/** A data set or data file that cannot be read as given (missing path, wrong columns, no shards). */
export class DataError extends MdmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATA_INVALID', message, options);
  }
}

/** A checkpoint or weights file that is missing, of another format, or does not fit the model. */
export class CheckpointError extends MdmError {
  constructor(message: string, options?: { code?: 'CHECKPOINT_INVALID' | 'CHECKPOINT_MISSING'; cause?: unknown }) {
    super(options?.code ?? 'CHECKPOINT_INVALID', message, options);
  }
}

/** A compute backend that was asked for but cannot run here; the message says how to get it. */
export class BackendError extends MdmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
  }
}

/** True for errors a user can fix (an `MdmError`): print the message alone; false for bugs. */
export function isUserError(error: unknown): error is MdmError {
  return error instanceof MdmError;
}
