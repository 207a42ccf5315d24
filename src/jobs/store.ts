import type { JobStatus } from './states.js';
import type {
  AttemptRef, CancelResult, CompleteAndClaimResult, DeliveredImage, FailOutcome, Job, JobError, JobEvent, JobImage, ListQuery, NewJob, StoredJob,
} from './types.js';

/**
 * What a store tells every instance sharing it once a write has committed,
 * the writing instance included: so a scheduler wakes for work another
 * instance queued, a `Prefer: wait` request answers when another instance
 * ends its job, and a cancel reaches the instance running the attempt.
 */
export type JobSignal =
  /** A job became due at `runAt`, or will: inserted, re-run, retried later, returned or requeued. */
  | { readonly kind: 'due'; readonly runAt: number }
  /** These jobs ended (succeeded, failed or cancelled). */
  | { readonly kind: 'ended'; readonly jobIds: readonly number[]; readonly status: JobStatus };

/**
 * Where jobs live: the one interface the jobs core, the scheduler and the
 * operations code use, implemented by SQLite (`src/db/sqlite/`) and
 * PostgreSQL (`src/db/postgres/`). Every verb is one transaction. Writes
 * made on behalf of an attempt are fenced by its owner and attempt number:
 * a late or abandoned attempt changes nothing. Times are epoch milliseconds,
 * passed in by the caller.
 */
export interface JobStore {
  readonly backend: 'sqlite' | 'postgres';

  /**
   * Subscribes to the signals every instance's commits raise (see
   * `JobSignal`), this instance's right after its commit. Each listener
   * subscribes once, before it needs to hear of any write.
   */
  onSignal(listener: (signal: JobSignal) => void): void;

  /**
   * Stores queued jobs with their image rows, in one transaction; a job with a
   * known idempotency key gets the first job back instead (`created: false`).
   */
  insertJobs(jobs: readonly NewJob[], now: number): Promise<StoredJob[]>;

  /**
   * Resolves once every commit made so far survives power loss (SQLite's
   * shared WAL fsync; at once where every commit already does).
   */
  makeDurable(): Promise<void>;

  /**
   * Moves up to `limit` due jobs to running under `owner`'s lease, counting
   * the attempt: highest priority first, then oldest `runAt`. Jobs another
   * instance is claiming at the same moment are skipped, not waited for.
   */
  claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<Job[]>;

  /** Extends an attempt's lease; false when the attempt no longer holds its job. */
  heartbeat(ref: AttemptRef, now: number, leaseMs: number): Promise<boolean>;

  /**
   * running → succeeded for each attempt, then `claimDue` for up to `limit`
   * jobs, in one transaction: a scheduler refilling the slots its finished
   * attempts free pays one commit for both.
   */
  completeAndClaimDue(refs: readonly AttemptRef[], now: number, owner: string, leaseMs: number, limit: number): Promise<CompleteAndClaimResult>;

  /** running → queued at `retryAt`, or → failed when `retryAt` is null (the retry policy's choice). */
  failAttempt(ref: AttemptRef, error: JobError, retryAt: number | null, now: number): Promise<FailOutcome>;

  /** running → queued at its old place, without counting the attempt (graceful shutdown). */
  returnAttempt(ref: AttemptRef, now: number): Promise<boolean>;

  /**
   * Requeues jobs whose lease expired or whose owner is in `deadOwners`
   * (failing those with no attempts left); returns how many were found.
   */
  requeueLost(now: number, deadOwners?: readonly string[]): Promise<number>;

  /** Distinct owners of running jobs. */
  runningOwners(): Promise<string[]>;

  /** Records one delivered image; false when the attempt no longer holds its job. */
  recordDelivered(ref: AttemptRef, index: number, image: DeliveredImage, now: number): Promise<boolean>;

  /** queued|running → cancelled; null for an unknown job. */
  cancelJob(id: number, now: number): Promise<CancelResult | null>;

  /** Makes a queued job due now; null when the job is not queued. */
  runNow(id: number, now: number): Promise<Job | null>;

  findByIdempotencyKey(key: string): Promise<StoredJob | null>;
  getJob(id: number): Promise<Job | null>;
  listImages(jobId: number): Promise<JobImage[]>;
  listEvents(jobId: number): Promise<JobEvent[]>;
  /** Newest first, keyset-paginated by id. */
  listJobs(query: ListQuery): Promise<Job[]>;

  /** Jobs by state as clients see them, read in O(1) however large the queue. */
  countByStatus(): Promise<Record<JobStatus, number>>;
  /** Queued plus running jobs: what MAX_QUEUED_JOBS bounds. */
  liveCount(): Promise<number>;
  /** Images of waiting or running jobs, and of retained succeeded jobs. */
  imageCounts(): Promise<{ pending: number; completed: number }>;
  /** Counts every job again (a full scan): at start, so rows changed by hand are counted right. */
  recountJobs(): Promise<void>;
  /** When the scheduler must next look for work: the earliest `runAt` waiting, or null when nothing waits. */
  nextRunAt(): Promise<number | null>;

  /** Which of `keys` a waiting or running job still owns. Callers pass a bounded number at a time. */
  liveKeysAmong(keys: readonly string[]): Promise<Set<string>>;
  /** Which of `ids` still name a job. */
  existingJobIds(ids: readonly number[]): Promise<Set<number>>;
  /**
   * Deletes terminal jobs finished before `olderThan`, then all but the
   * newest `keep` terminal jobs, a bounded batch a call (call again until it
   * returns none); images and events go with them. Returns the ids removed.
   */
  pruneTerminal(olderThan: number, keep: number): Promise<number[]>;

  /**
   * Truncates SQLite's write-ahead log when no reader holds it (the sweeper's
   * last step); null for a backend with nothing of the kind to do.
   */
  checkpoint(): Promise<{ busy: number; log: number; checkpointed: number } | null>;

  /**
   * Runs `work` unless another instance sharing the store is running work of
   * the same `name` (PostgreSQL: an advisory lock); resolves to null then.
   */
  exclusively<T>(name: string, work: () => Promise<T>): Promise<T | null>;

  /** Stops listening and closes connections and descriptors. */
  close(): Promise<void>;
}
