import type { EventKind, ImageStatus, JobStatus } from './states.js';

/** The shapes the job repository takes and returns. Times are epoch milliseconds. */

/** Identifies one attempt of one job: the fence every attempt write is guarded by. */
export interface AttemptRef {
  readonly jobId: number;
  readonly owner: string;
  readonly attempt: number;
}

export interface JobError {
  readonly code: string;
  readonly message: string;
}

export interface Job {
  readonly id: number;
  readonly status: JobStatus;
  readonly priority: number;
  /** Attempts started so far, the running one included. */
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly options: Record<string, unknown>;
  readonly destination: Record<string, unknown>;
  readonly idempotencyKey: string | null;
  /** The key its files carry in the temp store. */
  readonly inputKey: string | null;
  readonly runAt: number;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: number | null;
  readonly lastError: JobError | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

export interface JobImage {
  readonly jobId: number;
  readonly index: number;
  readonly originalName: string | null;
  readonly inputFormat: string;
  readonly width: number;
  readonly height: number;
  readonly pages: number;
  readonly inputBytes: number;
  readonly status: ImageStatus;
  readonly outputFormat: string | null;
  readonly outputWidth: number | null;
  readonly outputHeight: number | null;
  readonly outputBytes: number | null;
  readonly scaledToFit: boolean;
  readonly location: string | null;
  readonly deliveredAt: number | null;
}

export interface JobEvent {
  readonly id: number;
  readonly jobId: number;
  readonly attempt: number;
  readonly kind: EventKind;
  readonly leaseOwner: string | null;
  readonly error: JobError | null;
  readonly at: number;
}

/** An image row as submission stores it; the rest is filled in on delivery. */
export type NewImage = Pick<JobImage, 'originalName' | 'inputFormat' | 'width' | 'height' | 'pages' | 'inputBytes'>;

/** A job as submission stores it, queued with its images. */
export type NewJob = Pick<Job, 'priority' | 'maxAttempts' | 'options' | 'destination' | 'idempotencyKey' | 'inputKey' | 'runAt'> & {
  /** What the submission asked for, hashed (see `requestFingerprint`); kept to tell a repeat from another request with the same key. */
  readonly requestFingerprint: string | null;
  readonly images: readonly NewImage[];
};

/** A submitted job as stored, with its images. */
export interface StoredJob {
  readonly job: Job;
  readonly images: readonly JobImage[];
  /** False when an earlier submission with the same idempotency key is returned. */
  readonly created: boolean;
  /** The fingerprint the job was submitted with; null for a job stored without one. */
  readonly requestFingerprint: string | null;
}

export interface DeliveredImage {
  readonly outputFormat: string;
  readonly outputWidth: number;
  readonly outputHeight: number;
  readonly outputBytes: number;
  readonly scaledToFit: boolean;
  readonly location: string;
}

export interface ListQuery {
  readonly status?: JobStatus | undefined;
  readonly limit: number;
  /** Only jobs with a smaller id (the keyset cursor). */
  readonly beforeId?: number | undefined;
}

export interface CancelResult {
  readonly job: Job;
  /** False when the job had already ended. */
  readonly cancelled: boolean;
  /** The attempt that was running, which must now be aborted. */
  readonly previous: AttemptRef | null;
}

/** What `completeAndClaimDue` did: one flag per attempt (false when it no longer held its job), then the jobs claimed. */
export interface CompleteAndClaimResult {
  readonly completed: readonly boolean[];
  readonly claimed: readonly Job[];
}

/** What a terminal attempt end did; `null` when the attempt no longer held its job. */
export type FailOutcome = 'retrying' | 'failed' | null;
