import { describe, expect, it } from 'vitest';
import { BackendError, CheckpointError, ConfigError, DataError, MdmError, isUserError } from './errors.js';

describe('errors', () => {
  it('each kind is an MdmError with its stable code and its own name', () => {
    const cases: Array<[MdmError, string, string]> = [
      [new ConfigError('config: phases.0.steps: too small'), 'CONFIG_INVALID', 'ConfigError'],
      [new DataError('no shards'), 'DATA_INVALID', 'DataError'],
      [new CheckpointError('not a checkpoint'), 'CHECKPOINT_INVALID', 'CheckpointError'],
      [
        new CheckpointError('no checkpoint at x', { code: 'CHECKPOINT_MISSING' }),
        'CHECKPOINT_MISSING',
        'CheckpointError',
      ],
      [new BackendError('no addon'), 'BACKEND_UNAVAILABLE', 'BackendError'],
    ];
    for (const [error, code, name] of cases) {
      expect(error).toBeInstanceOf(MdmError);
      expect(error).toBeInstanceOf(Error);
      expect(error.code).toBe(code);
      expect(error.name).toBe(name);
      expect(isUserError(error)).toBe(true);
    }
  });

  it('a plain Error or a TypeError is a bug, not a user error', () => {
    expect(isUserError(new Error('x'))).toBe(false);
    expect(isUserError(new TypeError('undefined is not a function'))).toBe(false);
    expect(isUserError('a string')).toBe(false);
  });

  it('keeps the cause', () => {
    const cause = new Error('ENOENT');
    expect(new DataError('cannot read shard 3', { cause }).cause).toBe(cause);
  });
});
