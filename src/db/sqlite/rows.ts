import type { Job, JobEvent, JobImage } from '../../jobs/types.js';
import { JobStatus, publicStatus, type EventKind, type ImageStatus, type StoredStatus } from '../../jobs/states.js';

/** Rows as SQLite returns them (snake_case, booleans as 0/1), and their mapping to the repository's types. */

export interface JobSqlRow {
  id: number;
  status: StoredStatus;
  priority: number;
  attempts: number;
  max_attempts: number;
  options: string;
  destination: string;
  idempotency_key: string | null;
  request_fingerprint: string | null;
  input_key: string | null;
  image_count: number;
  run_at: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  last_error_code: string | null;
  last_error_message: string | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface ImageSqlRow {
  job_id: number;
  idx: number;
  original_name: string | null;
  input_format: string;
  width: number;
  height: number;
  pages: number;
  input_bytes: number;
  status: ImageStatus;
  output_format: string | null;
  output_width: number | null;
  output_height: number | null;
  output_bytes: number | null;
  scaled_to_fit: number;
  location: string | null;
  delivered_at: number | null;
}

export interface EventSqlRow {
  id: number;
  job_id: number;
  attempt: number;
  kind: EventKind;
  lease_owner: string | null;
  error_code: string | null;
  error_message: string | null;
  at: number;
}

export function toJob(row: JobSqlRow): Job {
  return {
    id: row.id,
    status: publicStatus(row.status),
    priority: row.priority,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    options: JSON.parse(row.options) as Record<string, unknown>,
    destination: JSON.parse(row.destination) as Record<string, unknown>,
    idempotencyKey: row.idempotency_key,
    inputKey: row.input_key,
    runAt: row.run_at,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    lastError: row.last_error_code === null ? null : { code: row.last_error_code, message: row.last_error_message ?? '' },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

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

export function toImage(row: ImageSqlRow): JobImage {
  return {
    jobId: row.job_id,
    index: row.idx,
    originalName: row.original_name,
    inputFormat: row.input_format,
    width: row.width,
    height: row.height,
    pages: row.pages,
    inputBytes: row.input_bytes,
    status: row.status,
    outputFormat: row.output_format,
    outputWidth: row.output_width,
    outputHeight: row.output_height,
    outputBytes: row.output_bytes,
    scaledToFit: row.scaled_to_fit === 1,
    location: row.location,
    deliveredAt: row.delivered_at,
  };
}

export function toEvent(row: EventSqlRow): JobEvent {
  return {
    id: row.id,
    jobId: row.job_id,
    attempt: row.attempt,
    kind: row.kind,
    leaseOwner: row.lease_owner,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    at: row.at,
  };
}
