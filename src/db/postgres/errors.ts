import { StoreUnavailableError } from '../../jobs/errors.js';
import { DiskFullError } from '../../storage/diskFull.js';

/**
 * PostgreSQL could not be reached or prepared at start (a malformed
 * `DATABASE_URL`, a refused connection, a failed migration): the service
 * stops its start with one line naming `DATABASE_URL` (an
 * `UnusableSettingError` made from `url` and `cause`). `url` is the one
 * given with its password masked, so it can be printed.
 */
export class DatabaseOpenError extends Error {
  constructor(
    readonly url: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DatabaseOpenError';
  }
}

/** `url` with its password, if any, masked: what a log line or start-up failure may show. */
export function maskPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** What a connection error says, never empty: Node reports a refused connection to every address of a name as an AggregateError without a message. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') {
    const first: unknown = error.errors[0];
    return first instanceof Error ? first.message : String((error as { code?: unknown }).code ?? 'connection failed');
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The server's disk is full (SQLSTATE 53100 `disk_full`): nothing was
 * written, and the same write succeeds once the server has room again. It is
 * a `DiskFullError`, so callers meet the one error they already handle for
 * SQLite's full disk: the API answers 503 `disk_full` with Retry-After and an
 * attempt is retried without using up the job's attempts.
 */
export class DatabaseFullError extends DiskFullError {
  constructor(cause: { code: string; message: string }) {
    super(cause);
    this.message = `the PostgreSQL server is out of room (SQLSTATE ${cause.code}: ${cause.message}): nothing was written; free space on the database server and the work resumes by itself`;
  }
}

const DISK_FULL_SQLSTATE = '53100';

/**
 * SQLSTATEs that say the server will not serve now, whatever was asked:
 * class 08 (connection exceptions), class 53 but a full disk (out of memory,
 * too many connections), 57P01–57P03 (shut down by an administrator, a
 * crash, or not yet accepting connections).
 */
const unavailableSqlstate = (code: string): boolean =>
  code.startsWith('08') || (code.startsWith('53') && code !== DISK_FULL_SQLSTATE) || ['57P01', '57P02', '57P03'].includes(code);

/** Node's and pg's own words for a connection that could not be made or was lost. */
const unavailableSystemCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const unavailableMessage = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection timeout/i;

/**
 * `error` as the store's callers know it: a `DatabaseFullError` when
 * PostgreSQL's disk is full, a `StoreUnavailableError` when the server
 * cannot be reached or will not serve now; otherwise `error` itself.
 */
export function storeError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === DISK_FULL_SQLSTATE) return new DatabaseFullError({ code, message: (error as Error).message });
  if (typeof code === 'string' && (unavailableSystemCodes.has(code) || (code.length === 5 && unavailableSqlstate(code)))) return new StoreUnavailableError(error);
  if (error instanceof AggregateError && error.errors.some((inner) => storeError(inner) instanceof StoreUnavailableError)) return new StoreUnavailableError(error);
  if (error instanceof Error && unavailableMessage.test(error.message)) return new StoreUnavailableError(error);
  return error;
}
