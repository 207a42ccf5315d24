export interface RetrySettings {
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

/**
 * Delay before retry number `attempt` (1 after the first failure): exponential
 * from RETRY_BASE_MS, with jitter that spreads jobs which failed together
 * (a destination outage) so they do not all come back at the same instant.
 * Always within [retryBaseMs, retryMaxMs].
 */
export function backoffMs(attempt: number, settings: RetrySettings, random: () => number = Math.random): number {
  const exponential = settings.retryBaseMs * 2 ** Math.min(attempt - 1, 30);
  const jittered = exponential * (1 + random());
  return Math.round(Math.min(settings.retryMaxMs, Math.max(settings.retryBaseMs, jittered)));
}

/** What becomes of a failed attempt. */
export interface RetryDecision {
  /** When the job runs again; null when it has failed for good. */
  readonly retryAt: number | null;
  /**
   * The failure's message and what follows from it, as the job records it:
   * when it runs again, or that no attempt is left. Worded here, where the
   * decision is made, so that no message promises a retry that will not come.
   */
  readonly message: string;
}

/**
 * The one place that decides retry or final failure: a permanent error or
 * the last allowed attempt fails the job (`retryAt` null); anything else is
 * retried at the returned time. A failure that outlasts attempts (a full
 * disk) is retried past the last one: the job did nothing wrong, and it runs
 * once space returns; its delay keeps growing to RETRY_MAX_MS meanwhile.
 */
export function decideRetry(
  failure: { readonly permanent: boolean; readonly outlastsAttempts: boolean; readonly message: string },
  attempt: { readonly attempts: number; readonly maxAttempts: number },
  now: number,
  settings: RetrySettings,
  random?: () => number,
): RetryDecision {
  if (failure.permanent) return { retryAt: null, message: failure.message };
  const of = `attempt ${attempt.attempts} of ${attempt.maxAttempts}`;
  if (attempt.attempts >= attempt.maxAttempts && !failure.outlastsAttempts) return { retryAt: null, message: `${failure.message}; ${of}, none left` };
  const delayMs = backoffMs(attempt.attempts, settings, random);
  const wait = delayMs < 1_000 ? `${delayMs} ms` : `${Math.round(delayMs / 1_000)} s`;
  if (failure.outlastsAttempts) {
    return { retryAt: now + delayMs, message: `${failure.message}; attempt ${attempt.attempts}, retrying in ${wait}: this fault does not use up the job's ${attempt.maxAttempts} attempts` };
  }
  return { retryAt: now + delayMs, message: `${failure.message}; ${of}, retrying in ${wait}` };
}
