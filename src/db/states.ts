/**
 * The closed list of job states. The schema mirrors it with a CHECK
 * constraint, so the database refuses any other value.
 */
export const JobStatus = {
  /** Waiting for `runAt`. Entered by `insertJob` (submission), `failAttempt` (retry scheduled),
   *  `returnAttempt` (graceful shutdown) and `requeueLost` (dead owner or expired lease).
   *  Left by `claimDue` or `completeAndClaimDue` (scheduler), or `cancelJob`. */
  queued: 'queued',
  /** An attempt holds the lease. Entered only by `claimDue` or `completeAndClaimDue`; left by
   *  `completeAttempt` (or `completeAndClaimDue`), `failAttempt`, `returnAttempt`, `cancelJob` or `requeueLost`. */
  running: 'running',
  /** Terminal: every image was delivered. Entered by `completeAttempt` or `completeAndClaimDue`; left only by `pruneTerminal`. */
  succeeded: 'succeeded',
  /** Terminal: a permanent error, or the last attempt failed. Entered by `failAttempt` or
   *  `requeueLost` (attempts exhausted); left only by `pruneTerminal`. */
  failed: 'failed',
  /** Terminal: stopped by a client. Entered by `cancelJob`; left only by `pruneTerminal`. */
  cancelled: 'cancelled',
} as const;

export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const jobStatuses = Object.values(JobStatus) as readonly JobStatus[];

/** States a job never leaves except by being pruned. */
export const terminalStatuses = [JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled] as const;

/** States whose jobs still own their input files. */
export const liveStatuses = [JobStatus.queued, JobStatus.running] as const;

export function isTerminal(status: JobStatus): boolean {
  return (terminalStatuses as readonly JobStatus[]).includes(status);
}

/**
 * The per-image states: `pending` until delivered in some attempt, then
 * `delivered`. An image of a failed or cancelled job stays `pending` here;
 * the API shows it with its job's end (`src/http/jobView.ts`), since that
 * follows from the job's state and needs no write of its own.
 */
export const ImageStatus = {
  pending: 'pending',
  delivered: 'delivered',
} as const;

export type ImageStatus = (typeof ImageStatus)[keyof typeof ImageStatus];

/** What a `job_events` row records: an attempt's start, or how it ended. */
export const EventKind = {
  started: 'started',
  succeeded: 'succeeded',
  /** Failed with attempts left: back to `queued` with a later `runAt`. */
  retrying: 'retrying',
  failed: 'failed',
  cancelled: 'cancelled',
  /** Put back by a graceful shutdown; the attempt is not counted. */
  returned: 'returned',
  /** Found running under a dead owner or an expired lease. */
  lost: 'lost',
} as const;

export type EventKind = (typeof EventKind)[keyof typeof EventKind];
