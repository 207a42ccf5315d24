import { TransientError } from '../queue/errors.js';

/**
 * Why the jobs core refuses a request, by code, and what kind of refusal each
 * is: the client's request was `invalid` or `unprocessable`, its image is
 * `unsupported`, or the service is `unavailable` for now (try again later).
 * The transport maps kinds to its own answers (HTTP: `src/http/problem.ts`).
 */
export const refusals = {
  /** The service is stopping. */
  shutting_down: 'unavailable',
  /** MAX_QUEUED_JOBS jobs are queued or running. */
  queue_full: 'unavailable',
  /** Free disk, less what uploads in progress will take, is below MIN_FREE_DISK_BYTES. */
  disk_low: 'unavailable',
  invalid_options: 'invalid',
  invalid_destination: 'invalid',
  /** An idempotency key used before for a different request. */
  idempotency_key_reused: 'unprocessable',
  unsupported_media_type: 'unsupported',
  image_too_large: 'unprocessable',
  image_corrupt: 'unprocessable',
} as const;

export type RefusalCode = keyof typeof refusals;
export type Refusal = (typeof refusals)[RefusalCode];

/** A request the jobs core will not carry out, with a stable code and a message saying what to change. */
export class JobRefusedError extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
    this.name = 'JobRefusedError';
  }

  get refusal(): Refusal {
    return refusals[this.code];
  }
}

/**
 * The job store's server cannot be reached or will not serve now (a
 * connection refused or lost, the server starting or shutting down, too many
 * connections). A write that met it may or may not have committed, if the
 * connection broke during the commit: the API answers 503
 * `database_unavailable` without claiming either, and an attempt that met it
 * is retried without using up the job's attempts, as for a full disk: the
 * fault is the service's, not the job's.
 */
export class StoreUnavailableError extends TransientError {
  override readonly outlastsAttempts = true;

  constructor(cause: unknown) {
    super('database_unavailable', `the database cannot be reached: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
