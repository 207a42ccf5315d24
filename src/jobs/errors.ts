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
