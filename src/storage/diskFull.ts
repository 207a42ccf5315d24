import fs from 'node:fs';
import { TransientError } from '../queue/errors.js';

/** The code a job records, and the API answers, for a write that met a full disk. */
export const DISK_FULL = 'disk_full';

/**
 * A write found no room on the volume holding DATA_DIR: a file write or
 * rename (ENOSPC, EDQUOT) or a database write (SQLITE_FULL: SQLite's unix
 * layer reports a failed write with ENOSPC as that; see `diskFullOr` for
 * its I/O errors). Nothing was stored. It
 * is transient: the same write succeeds once space returns, so an attempt
 * retries, and the API answers 503 `disk_full` with Retry-After.
 */
export class DiskFullError extends TransientError {
  override readonly outlastsAttempts = true;

  constructor(cause: unknown) {
    super(DISK_FULL, 'the disk holding DATA_DIR is full: nothing was written; free space on that volume (or grow it) and the work resumes by itself', { cause });
  }
}

/**
 * A write was committed, then the disk could not make it durable (the fsync
 * that `makeDurable` runs met a full disk). Unlike `DiskFullError`, what was
 * written stands: `committed` says what it was, so no answer claims that
 * nothing happened, and `jobId` names the job it created, if it did.
 */
export class UnconfirmedWriteError extends DiskFullError {
  constructor(
    readonly committed: string,
    readonly jobId: number | null,
    cause: unknown,
  ) {
    super(cause);
  }
}

/**
 * Waits for `durable` (a `makeDurable` after a commit); a full disk there
 * becomes an `UnconfirmedWriteError` saying what was `committed`.
 */
export async function confirmDurable(durable: Promise<void>, committed: string, jobId: number | null = null): Promise<void> {
  try {
    await durable;
  } catch (error) {
    throw error instanceof DiskFullError ? new UnconfirmedWriteError(committed, jobId, error.cause) : error;
  }
}

const fullCodes = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/**
 * Below this much free space, an SQLite I/O error on the volume is taken for
 * a full disk: SQLite says SQLITE_FULL only for a failed write of the
 * database or WAL; an ENOSPC growing the WAL index (-shm) or in an fsync
 * reaches it as SQLITE_IOERR_SHMSIZE, SQLITE_IOERR_FSYNC and the like.
 */
const NEARLY_FULL_BYTES = 1024 * 1024;

function nearlyFull(dir: string): boolean {
  try {
    const stats = fs.statfsSync(dir);
    return stats.bavail * stats.bsize < NEARLY_FULL_BYTES;
  } catch {
    return false; // no figure: the I/O error stays what it is
  }
}

/**
 * `error` as a `DiskFullError` when it says the volume is full (from its
 * system or SQLite code; an SQLite I/O error when `dir`, the database's
 * folder, is given and its volume is nearly full); otherwise `error` itself.
 */
export function diskFullOr(error: unknown, dir?: string): unknown {
  if (error instanceof DiskFullError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  const full = fullCodes.has(code) || (dir !== undefined && code.startsWith('SQLITE_IOERR') && nearlyFull(dir));
  return full ? new DiskFullError(error) : error;
}
