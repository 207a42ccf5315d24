/**
 * How a job attempt ends badly. A `PermanentError` fails the job at once; any
 * other error is transient and retried with backoff until the job's attempts
 * run out. `decideRetry` is the one place that turns this into an outcome.
 */
export class JobFailure extends Error {
  /**
   * Retried however many attempts the job has used: set for a fault of the
   * service's own machine (a full disk), which says nothing about the job
   * and must not use up its attempts while it lasts.
   */
  readonly outlastsAttempts: boolean = false;

  constructor(
    /** Stable machine code recorded on the job (`last_error_code`). */
    readonly code: string,
    message: string,
    readonly permanent: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Retrying cannot help: bad input, a refused destination. */
export class PermanentError extends JobFailure {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, true, options);
  }
}

/** Retrying may help: network, 5xx, disk, timeout. */
export class TransientError extends JobFailure {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, false, options);
  }
}

/** The attempt ran past JOB_TIMEOUT_MS. */
export class AttemptTimeoutError extends TransientError {
  constructor(timeoutMs: number) {
    super('attempt_timeout', `the attempt did not finish within ${timeoutMs} ms`);
  }
}

/** What is recorded for any thrown value, Error or not. */
export interface ClassifiedError {
  readonly code: string;
  readonly message: string;
  readonly permanent: boolean;
  /** See `JobFailure.outlastsAttempts`. */
  readonly outlastsAttempts: boolean;
}

export function classifyError(thrown: unknown): ClassifiedError {
  if (thrown instanceof JobFailure) {
    return { code: thrown.code, message: thrown.message, permanent: thrown.permanent, outlastsAttempts: thrown.outlastsAttempts };
  }
  if (thrown instanceof Error) {
    const systemCode = (thrown as NodeJS.ErrnoException).code;
    // Unknown errors are retried: most are passing faults (disk, network), and
    // maxAttempts bounds the cost of the ones that are not.
    return { code: typeof systemCode === 'string' ? systemCode.toLowerCase() : 'internal_error', message: thrown.message, permanent: false, outlastsAttempts: false };
  }
  let text: string;
  try {
    text = typeof thrown === 'string' ? thrown : JSON.stringify(thrown) ?? String(thrown);
  } catch {
    text = String(thrown);
  }
  return { code: 'non_error_thrown', message: `a non-Error value was thrown: ${text}`, permanent: false, outlastsAttempts: false };
}
