import { TransientError } from '../queue/errors.js';

/** The code a job records, and the API answers, for a write that met a full disk. */
export const DISK_FULL = 'disk_full';

/**
 * A write found no room on the volume holding DATA_DIR: a file write or
 * rename (ENOSPC, EDQUOT) or a database write (SQLITE_FULL: SQLite's unix
 * layer reports a failed write with ENOSPC as that). Nothing was stored. It
 * is transient: the same write succeeds once space returns, so an attempt
 * retries, and the API answers 503 `disk_full` with Retry-After.
 */
export class DiskFullError extends TransientError {
  override readonly outlastsAttempts = true;

  constructor(cause: unknown) {
    super(DISK_FULL, 'the disk holding DATA_DIR is full: nothing was written; free space on that volume (or grow it) and the work resumes by itself', { cause });
  }
}

const fullCodes = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** Whether `error` says the volume is full, from its system or SQLite code. */
export function isDiskFull(error: unknown): boolean {
  if (error instanceof DiskFullError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && fullCodes.has(code);
}

/** `error` as a `DiskFullError` when it says the disk is full; otherwise `error` itself. */
export function diskFullOr(error: unknown): unknown {
  return isDiskFull(error) && !(error instanceof DiskFullError) ? new DiskFullError(error) : error;
}
