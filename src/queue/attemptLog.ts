import type { Logger } from 'pino';
import type { AttemptOutcome } from './scheduler.js';

/** A failed attempt as its job records it: the code, the message as worded by `decideRetry`, and the retry's time (null: none). */
export interface RecordedFailure {
  readonly code: string;
  readonly message: string;
  readonly retryAt: number | null;
}

const messages: Readonly<Record<AttemptOutcome, string>> = {
  succeeded: 'job succeeded',
  retrying: 'job retrying',
  failed: 'job failed',
  returned: 'attempt returned to the queue',
  cancelled: 'attempt cancelled',
  superseded: 'attempt superseded: it no longer held its job',
};

/**
 * Every end of an attempt is one log line carrying its `outcome`, whatever
 * ended it (its work, a cancel, a shutdown, a lost lease): a warning with
 * the recorded error when it failed, info otherwise.
 */
export function logAttemptEnd(
  log: Logger,
  end: { readonly jobId: number; readonly attempt: number; readonly outcome: AttemptOutcome; readonly durationMs: number },
  failure: RecordedFailure | null,
): void {
  if (failure === null) log.info(end, messages[end.outcome]);
  else log.warn({ ...end, code: failure.code, err: failure.message, retryAt: failure.retryAt }, messages[end.outcome]);
}
