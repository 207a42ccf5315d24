import { JobStatus } from '../../jobs/states.js';
import type { Job } from '../../jobs/types.js';

/**
 * What a claim returns of each job: every column the claim does not set
 * itself, in this order. The claim reads them as arrays (better-sqlite3's
 * `raw`): building an object per row, which names every column again, cost
 * about a quarter of a claim of five jobs.
 */
export const claimedColumns = [
  'id', 'priority', 'attempts', 'max_attempts', 'options', 'destination', 'idempotency_key', 'input_key', 'run_at',
  'last_error_code', 'last_error_message', 'created_at', 'finished_at', 'image_count',
] as const;

export type ClaimedSqlValues = [
  id: number, priority: number, attempts: number, maxAttempts: number, options: string, destination: string,
  idempotencyKey: string | null, inputKey: string | null, runAt: number, lastErrorCode: string | null,
  lastErrorMessage: string | null, createdAt: number, finishedAt: number | null, imageCount: number,
];

/** How many images a claimed job has (what the claim moves in job_counts). */
export const claimedImageCount = (values: ClaimedSqlValues): number => values[13];

/** What the claim itself set: the job is running under this lease since `now`. */
export interface ClaimLease {
  readonly owner: string;
  readonly expires: number;
  readonly now: number;
}

/** A claimed job from `claimedColumns` and the lease the claim wrote: the row as `RETURNING *` would give it. */
export function toClaimedJob(values: ClaimedSqlValues, lease: ClaimLease): Job {
  const [id, priority, attempts, maxAttempts, options, destination, idempotencyKey, inputKey, runAt, lastErrorCode, lastErrorMessage, createdAt, finishedAt] =
    values;
  return {
    id,
    status: JobStatus.running,
    priority,
    attempts,
    maxAttempts,
    options: JSON.parse(options) as Record<string, unknown>,
    destination: JSON.parse(destination) as Record<string, unknown>,
    idempotencyKey,
    inputKey,
    runAt,
    leaseOwner: lease.owner,
    leaseExpiresAt: lease.expires,
    lastError: lastErrorCode === null ? null : { code: lastErrorCode, message: lastErrorMessage ?? '' },
    createdAt,
    updatedAt: lease.now,
    startedAt: lease.now,
    finishedAt,
  };
}
