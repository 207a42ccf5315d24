/**
 * The closed list of job states. The schema mirrors it with a CHECK
 * constraint, so the database refuses any other value.
 */
export const JobStatus = {
  /** Waiting to run. Clients see every waiting job as `queued`; the row says `queued` only once
   *  `runAt` has come (a job waiting for a later `runAt` is stored as `scheduled`, below).
   *  Entered by `insertJob` (submission due now), `failAttempt` (retry due now), `returnAttempt`
   *  (graceful shutdown), `requeueLost` (dead owner or expired lease), `runNow`, and by the claim's
   *  promotion of due `scheduled` jobs. Left by `claimDue` or `completeAndClaimDue` (scheduler), or `cancelJob`. */
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

/**
 * What a job's row may hold: the API's states, plus one the API never shows.
 * The schema's CHECK mirrors this list.
 *
 * `scheduled` keeps jobs that wait for a later `runAt` out of the claim's
 * index (`jobs_claim_idx` holds `queued` rows only), so a claim reads the
 * due jobs it takes and nothing else, however many wait for later: River's
 * `scheduled` and `available`. Clients see a `scheduled` job as `queued`.
 */
export const StoredStatus = {
  ...JobStatus,
  /** Queued, waiting for a `runAt` still to come. Entered by `insertJob` (a `delayMs`) and
   *  `failAttempt` (a retry's backoff). Left by the claim's promotion to `queued` once `runAt`
   *  has passed (oldest first, in bounded batches, inside `claimDue` and `completeAndClaimDue`:
   *  at least once a second, and whenever a claim finds too few queued jobs), by `runNow`
   *  (to `queued`) or by `cancelJob`. */
  scheduled: 'scheduled',
} as const;

export type StoredStatus = (typeof StoredStatus)[keyof typeof StoredStatus];

/** The state a client sees for a row's state. */
export function publicStatus(status: StoredStatus): JobStatus {
  return status === StoredStatus.scheduled ? JobStatus.queued : status;
}

/** States a job never leaves except by being pruned. */
export const terminalStatuses = [JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled] as const;

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
