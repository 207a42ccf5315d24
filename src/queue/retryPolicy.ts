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

/**
 * The one place that decides retry or final failure: a permanent error or
 * the last allowed attempt fails the job (null); anything else is retried at
 * the returned time. A failure that outlasts attempts (a full disk) is
 * retried past the last one: the job did nothing wrong, and it runs once
 * space returns; its delay keeps growing to RETRY_MAX_MS meanwhile.
 */
export function decideRetry(
  failure: { readonly permanent: boolean; readonly outlastsAttempts: boolean },
  attempt: { readonly attempts: number; readonly maxAttempts: number },
  now: number,
  settings: RetrySettings,
  random?: () => number,
): number | null {
  if (failure.permanent || (attempt.attempts >= attempt.maxAttempts && !failure.outlastsAttempts)) return null;
  return now + backoffMs(attempt.attempts, settings, random);
}
