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
 * The server is out of a resource (SQLSTATE class 53: `disk_full` 53100,
 * out of memory, too many connections): nothing was written, and the same
 * write succeeds once the server has room again. It is a `DiskFullError`,
 * so callers meet the one error they already handle for SQLite's full
 * disk: the API answers 503 `disk_full` with Retry-After and an attempt
 * is retried without using up the job's attempts.
 */
export class DatabaseFullError extends DiskFullError {
  constructor(cause: { code: string; message: string }) {
    super(cause);
    this.message = `the PostgreSQL server is out of room (SQLSTATE ${cause.code}: ${cause.message}): nothing was written; free space on the database server and the work resumes by itself`;
  }
}

const INSUFFICIENT_RESOURCES = '53';

/** `error` as a `DatabaseFullError` when PostgreSQL says it is out of room; otherwise `error` itself. */
export function storeError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length === 5 && code.startsWith(INSUFFICIENT_RESOURCES)) {
    return new DatabaseFullError({ code, message: (error as Error).message });
  }
  return error;
}
