import path from 'node:path';
import type Database from 'better-sqlite3';
import { EventKind, JobStatus, StoredStatus } from '../../jobs/states.js';
import type { JobSignal, JobStore } from '../../jobs/store.js';
import type {
  AttemptRef, CancelResult, CompleteAndClaimResult, DeliveredImage, FailOutcome, Job, JobError, JobEvent, JobImage, ListQuery, NewJob, StoredJob,
} from '../../jobs/types.js';
import { heldFsync } from '../../storage/fsync.js';
import { CountDelta } from '../countDelta.js';
import { clip, PROMOTE_BATCH, PROMOTE_INTERVAL_MS, PRUNE_BATCH } from '../limits.js';
import { toEvent, toImage, toJob, type EventRow, type ImageRow, type JobRow } from '../rows.js';
import { claimedColumns, claimedImageCount, toClaimedJob, type ClaimedSqlValues, type ClaimLease } from './claimedRow.js';
import { surfaceDiskFull } from './surfaceDiskFull.js';

/**
 * The SQLite job store: all SQL of jobs on SQLite lives here, behind the
 * named verbs of `JobStore`. Statements are prepared
 * once; every write runs in a synchronous IMMEDIATE transaction, so nothing is
 * awaited while the write lock is held. Writes made on behalf of an attempt
 * are guarded by its owner and attempt number: a late or abandoned attempt
 * changes nothing.
 */


interface PrunedRow {
  id: number;
  status: StoredStatus;
  image_count: number;
}

/**
 * The fence of every write made on behalf of an attempt: the job is still
 * running under that attempt's owner and number. A late or abandoned attempt
 * matches no row, so changes nothing.
 */
const HELD_BY_ATTEMPT = `id = @id AND status = 'running' AND lease_owner = @owner AND attempts = @attempt`;

/** A row's state for a job that waits for `runAt`: `queued` once it is due, `scheduled` until then. */
const WAITING_STATUS = `CASE WHEN @runAt <= @now THEN 'queued' ELSE 'scheduled' END`;

export type SqliteStore = ReturnType<typeof createSqliteStore>;

/** SQLite's `synchronous` levels as the pragma reports them. */
const SYNCHRONOUS_NORMAL = 1;

/**
 * With `synchronous = FULL` asked for (SQLITE_SYNCHRONOUS's default), the
 * connection commits at NORMAL and a write a client is told about (a
 * submission's 202, a cancel) waits for `makeDurable`: an fsync of the WAL
 * on libuv's pool, shared by every commit made before it starts, instead of
 * one fsync per commit on the main thread. What it makes durable is what
 * FULL would: the WAL frames of every commit so far (WAL keeps all commits
 * safe from a process crash either way). The attempt's own writes (claims,
 * deliveries, completions) are not waited for: a power loss can roll the
 * latest of them back, which only runs an attempt again.
 */
export function createSqliteStore(db: Database.Database) {
  // Only in WAL mode (which openDatabase asks for, but a file system may refuse): otherwise FULL stays as it is.
  const wal = db.pragma('journal_mode', { simple: true }) === 'wal';
  const full = wal && (db.pragma('synchronous', { simple: true }) as number) > SYNCHRONOUS_NORMAL;
  if (full) db.pragma('synchronous = NORMAL');
  // SQLite keeps the WAL beside the database, named `<database>-wal`, for as long as a connection is open.
  const walSync = full ? heldFsync(`${db.name}-wal`) : null;

  const sql = {
    // Insert a new queued job.
    insertJob: db.prepare<
      { priority: number; maxAttempts: number; options: string; destination: string; idempotencyKey: string | null; requestFingerprint: string | null;
        inputKey: string | null;
        imageCount: number; runAt: number; now: number },
      JobRow
    >(
      `INSERT INTO jobs (status, priority, max_attempts, options, destination, idempotency_key, request_fingerprint, input_key, image_count, run_at, created_at, updated_at)
       VALUES (${WAITING_STATUS}, @priority, @maxAttempts, @options, @destination, @idempotencyKey, @requestFingerprint, @inputKey, @imageCount, @runAt, @now, @now)
       RETURNING *`,
    ),
    // Insert one image row of a job.
    insertImage: db.prepare<[number, number, string | null, string, number, number, number, number], ImageRow>(
      `INSERT INTO job_images (job_id, idx, original_name, input_format, width, height, pages, input_bytes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    ),
    // The job a previous submission stored under an idempotency key.
    byIdempotencyKey: db.prepare<[string], JobRow>(`SELECT * FROM jobs WHERE idempotency_key = ?`),
    // Move scheduled jobs whose run_at has come to queued, oldest first: reads only the head of jobs_scheduled_idx.
    // The batch is written in: a bound LIMIT costs a re-prepare per run (see claimDue).
    promoteDue: db.prepare<{ now: number }>(
      `UPDATE jobs SET status = 'queued'
        WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_scheduled_idx WHERE status = 'scheduled' AND run_at <= @now
                     ORDER BY run_at LIMIT ${PROMOTE_BATCH})`,
    ),
    // Claim up to n queued (hence due) jobs in one statement: highest priority first, then oldest run_at. It reads
    // the n entries it takes and no more: jobs waiting for later are scheduled, outside jobs_claim_idx.
    // INDEXED BY: without statistics the planner might prefer another index and sort every queued job.
    // `@limit + 0`, not `@limit`: SQLite (3.47 on) plans with a LIMIT's bound value and so marks a statement whose
    // LIMIT is a bare parameter expired whenever that parameter is bound, re-preparing it at every run (measured:
    // about 50,000 instructions a claim, a sixth of a job's cost through the queue). An expression is not read.
    claimDue: db.prepare<ClaimLease & { limit: number }, ClaimedSqlValues>(
      `UPDATE jobs
          SET status = 'running', attempts = attempts + 1, lease_owner = @owner, lease_expires_at = @expires,
              started_at = @now, updated_at = @now
        WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim_idx WHERE status = 'queued'
                     ORDER BY priority DESC, run_at, id LIMIT @limit + 0)
        RETURNING ${claimedColumns.join(', ')}`,
    ).raw(),
    // Record an attempt's start or end.
    insertEvent: db.prepare<[number, number, EventKind, string | null, string | null, string | null, number]>(
      `INSERT INTO job_events (job_id, attempt, kind, lease_owner, error_code, error_message, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    // Extend the lease of an attempt that still holds its job.
    heartbeat: db.prepare<{ id: number; owner: string; attempt: number; expires: number }>(
      `UPDATE jobs SET lease_expires_at = @expires
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Finish an attempt that delivered everything.
    complete: db.prepare<{ id: number; owner: string; attempt: number; now: number }>(
      `UPDATE jobs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, finished_at = @now, updated_at = @now,
              last_error_code = NULL, last_error_message = NULL
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Put a failed attempt's job back in the queue for a later run.
    retry: db.prepare<{ id: number; owner: string; attempt: number; now: number; runAt: number; code: string; message: string }>(
      `UPDATE jobs SET status = ${WAITING_STATUS}, lease_owner = NULL, lease_expires_at = NULL, run_at = @runAt, updated_at = @now,
              last_error_code = @code, last_error_message = @message
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Fail a job for good.
    fail: db.prepare<{ id: number; owner: string; attempt: number; now: number; code: string; message: string }>(
      `UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = @now, updated_at = @now,
              last_error_code = @code, last_error_message = @message
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Give an interrupted attempt's job back without counting the attempt. run_at stays as it was: the job keeps its place.
    returnAttempt: db.prepare<{ id: number; owner: string; attempt: number; now: number }>(
      `UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
              updated_at = @now
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Cancel a job that has not ended.
    cancel: db.prepare<{ id: number; now: number }, JobRow>(
      `UPDATE jobs SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = @now, updated_at = @now,
              last_error_code = 'cancelled', last_error_message = 'cancelled by request'
        WHERE id = @id AND (status = 'scheduled' OR status = 'queued' OR status = 'running') RETURNING *`,
    ),
    // Make a waiting job due now.
    runNow: db.prepare<{ id: number; now: number }, JobRow>(
      `UPDATE jobs SET status = 'queued', run_at = @now, updated_at = @now
        WHERE id = @id AND (status = 'scheduled' OR status = 'queued') RETURNING *`,
    ),
    // Apply one state's share of a transaction's CountDelta: one row by its key, once per state that moved. An
    // UPDATE of all five rows with a CASE per column opened a statement journal and cost more per transaction.
    moveCounts: db.prepare<[number, number, JobStatus]>(`UPDATE job_counts SET jobs = jobs + ?, images = images + ? WHERE status = ?`),
    // Count every row again (a full scan): at start, so a row changed by hand is counted. Zero first: a state
    // with no rows is missing from the grouped counts.
    zeroCounts: db.prepare(`UPDATE job_counts SET jobs = 0, images = 0`),
    recount: db.prepare(
      `UPDATE job_counts SET jobs = c.jobs, images = c.images
         FROM (SELECT iif(status = 'scheduled', 'queued', status) AS status, count(*) AS jobs, coalesce(sum(image_count), 0) AS images
                 FROM jobs GROUP BY 1) AS c
        WHERE c.status = job_counts.status`,
    ),
    // Running jobs whose lease expired or whose owner is known dead.
    lostJobs: db.prepare<{ now: number; deadOwners: string }, JobRow>(
      `SELECT * FROM jobs WHERE status = 'running'
          AND (lease_expires_at < @now OR lease_owner IN (SELECT value FROM json_each(@deadOwners)))`,
    ),
    // Requeue a lost attempt's job (the lost attempt counts).
    requeueLost: db.prepare<{ id: number; owner: string; attempt: number; now: number }>(
      `UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_at = @now, updated_at = @now,
              last_error_code = 'attempt_lost', last_error_message = 'the attempt''s process stopped or lost its lease'
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Fail a lost attempt's job that has no attempts left.
    failLost: db.prepare<{ id: number; owner: string; attempt: number; now: number }>(
      `UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = @now, updated_at = @now,
              last_error_code = 'attempt_lost', last_error_message = 'the last attempt''s process stopped or lost its lease'
        WHERE ${HELD_BY_ATTEMPT}`,
    ),
    // Distinct owners of running jobs (to find dead local processes).
    runningOwners: db.prepare<[], { lease_owner: string }>(
      `SELECT DISTINCT lease_owner FROM jobs WHERE status = 'running'`,
    ),
    // Mark one image delivered, if the attempt still holds its job.
    deliverImage: db.prepare<{
      id: number; owner: string; attempt: number; index: number; now: number; outputFormat: string;
      outputWidth: number; outputHeight: number; outputBytes: number; scaledToFit: number; location: string;
    }>(
      `UPDATE job_images SET status = 'delivered', output_format = @outputFormat, output_width = @outputWidth,
              output_height = @outputHeight, output_bytes = @outputBytes, scaled_to_fit = @scaledToFit,
              location = @location, delivered_at = @now
        WHERE job_id = @id AND idx = @index
          AND EXISTS (SELECT 1 FROM jobs WHERE ${HELD_BY_ATTEMPT})`,
    ),
    getJob: db.prepare<[number], JobRow>(`SELECT * FROM jobs WHERE id = ?`),
    // What job_counts moves with an ended attempt's job. Read apart from the statement that ends it: a RETURNING
    // clause buffers its rows in a temporary b-tree, a page allocated and cleared per statement.
    imageCount: db.prepare<[number], number>(`SELECT image_count FROM jobs WHERE id = ?`).pluck(),
    // A job's images in upload order.
    images: db.prepare<[number], ImageRow>(`SELECT * FROM job_images WHERE job_id = ? ORDER BY idx`),
    // A job's attempt history, oldest first.
    events: db.prepare<[number], EventRow>(`SELECT * FROM job_events WHERE job_id = ? ORDER BY id`),
    // Newest first, keyset-paginated by id.
    list: db.prepare<{ beforeId: number; limit: number }, JobRow>(
      `SELECT * FROM jobs WHERE id < @beforeId ORDER BY id DESC LIMIT @limit`,
    ),
    // Newest first in one or two row states (queued's two), keyset-paginated by id.
    listByStatus: db.prepare<{ status: StoredStatus; alsoStatus: StoredStatus; beforeId: number; limit: number }, JobRow>(
      `SELECT * FROM jobs WHERE (status = @status OR status = @alsoStatus) AND id < @beforeId ORDER BY id DESC LIMIT @limit`,
    ),
    // Jobs and their images by state as clients see them: five rows, whatever the size of the queue.
    counts: db.prepare<[], { status: JobStatus; jobs: number; images: number }>(`SELECT status, jobs, images FROM job_counts`),
    // Jobs waiting or running: the figure MAX_QUEUED_JOBS bounds.
    liveCount: db.prepare<[], { n: number }>(`SELECT coalesce(sum(jobs), 0) AS n FROM job_counts WHERE status = 'queued' OR status = 'running'`),
    // When the scheduler must next look for work: at once if a job is queued, else when the first scheduled one falls due.
    // Each side reads one index entry (INDEXED BY: as for the claim).
    nextRunAt: db.prepare<[], { run_at: number | null }>(
      `SELECT min(run_at) AS run_at FROM (
         SELECT * FROM (SELECT run_at FROM jobs INDEXED BY jobs_claim_idx WHERE status = 'queued' LIMIT 1)
         UNION ALL
         SELECT * FROM (SELECT run_at FROM jobs INDEXED BY jobs_scheduled_idx WHERE status = 'scheduled' ORDER BY run_at LIMIT 1))`,
    ),
    // Which of the given temp-store keys a waiting or running job still owns (one index probe per key).
    liveKeysAmong: db.prepare<[string], { input_key: string }>(
      `SELECT input_key FROM jobs INDEXED BY jobs_input_key_idx
        WHERE input_key IN (SELECT value FROM json_each(?)) AND (status = 'scheduled' OR status = 'queued' OR status = 'running')`,
    ),
    // Which of the given ids still name a job (the sweeper's test for orphaned result folders).
    existingJobIds: db.prepare<[string], { id: number }>(`SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))`),
    // Terminal jobs finished before a cut-off. The status test is jobs_finished_idx's WHERE, word for word: the planner
    // uses a partial index only for a query that repeats it.
    pruneExpired: db.prepare<{ olderThan: number; limit: number }, PrunedRow>(
      `DELETE FROM jobs WHERE id IN (
         SELECT id FROM jobs WHERE (status = 'succeeded' OR status = 'failed' OR status = 'cancelled') AND finished_at < @olderThan
          LIMIT @limit)
       RETURNING id, status, image_count`,
    ),
    // All but the newest n terminal jobs.
    pruneOverflow: db.prepare<{ keep: number; limit: number }, PrunedRow>(
      `DELETE FROM jobs WHERE id IN (
         SELECT id FROM jobs WHERE (status = 'succeeded' OR status = 'failed' OR status = 'cancelled')
          ORDER BY finished_at DESC, id DESC LIMIT @limit OFFSET @keep)
       RETURNING id, status, image_count`,
    ),
  };

  /**
   * The counts the running transaction moves; `counted` opens one for its body and writes it, in one statement,
   * before the commit. Verbs write into it with `moveCounts`: a transaction per write, not a statement per job.
   */
  let delta: CountDelta | null = null;
  const moveCounts = (from: StoredStatus | null, to: StoredStatus | null, jobs: number, images: number): void => {
    if (delta === null) throw new Error('job rows written outside a counted transaction');
    delta.move(from, to, jobs, images);
  };
  function counted<A extends unknown[], R>(body: (...args: A) => R): Database.Transaction<(...args: A) => R> {
    return db.transaction((...args: A): R => {
      delta = new CountDelta();
      try {
        const result = body(...args);
        for (const { status, jobs, images } of delta.moves()) sql.moveCounts.run(jobs, images, status);
        return result;
      } finally {
        delta = null;
      }
    });
  }
  const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);
  let nextPromoteAt = Number.NEGATIVE_INFINITY;
  /** Moves due scheduled jobs to queued (uncounted: both are `queued` to clients); false when none was due. */
  const promoteDue = (now: number): boolean => {
    nextPromoteAt = now + PROMOTE_INTERVAL_MS;
    return sql.promoteDue.run({ now }).changes > 0;
  };

  const recordEvent = (ref: AttemptRef, kind: EventKind, now: number, error: JobError | null = null): void => {
    sql.insertEvent.run(ref.jobId, ref.attempt, kind, ref.owner, error?.code ?? null, error ? clip(error.message) : null, now);
  };

  const refOf = (job: JobRow): AttemptRef => ({ jobId: job.id, owner: job.lease_owner ?? '', attempt: job.attempts });

  /** A job stored earlier, as a repeated submission gets it back. */
  const storedEarlier = (row: JobRow): StoredJob => ({
    job: toJob(row), images: sql.images.all(row.id).map(toImage), created: false, requestFingerprint: row.request_fingerprint,
  });

  const insertOne = (job: NewJob, now: number): StoredJob => {
    if (job.idempotencyKey !== null) {
      const existing = sql.byIdempotencyKey.get(job.idempotencyKey);
      if (existing) return storedEarlier(existing);
    }
    const row = sql.insertJob.get({
      priority: job.priority, maxAttempts: job.maxAttempts, options: JSON.stringify(job.options), destination: JSON.stringify(job.destination),
      idempotencyKey: job.idempotencyKey, requestFingerprint: job.requestFingerprint, inputKey: job.inputKey, imageCount: job.images.length, runAt: job.runAt, now,
    }) as JobRow;
    moveCounts(null, row.status, 1, row.image_count);
    const images = job.images.map((image, index) =>
      toImage(sql.insertImage.get(row.id, index, image.originalName, image.inputFormat, image.width, image.height, image.pages, image.inputBytes) as ImageRow),
    );
    return { job: toJob(row), images, created: true, requestFingerprint: row.request_fingerprint };
  };
  const insertJobsTx = counted((jobs: readonly NewJob[], now: number) => jobs.map((job) => insertOne(job, now)));

  // The bodies below are plain functions, composed inside one transaction
  // each: calling a transaction function within another would add a
  // savepoint per call.
  const claimRows = (owner: string, now: number, leaseMs: number, limit: number): Job[] => {
    const lease: ClaimLease = { owner, now, expires: now + leaseMs };
    const promotedFirst = now >= nextPromoteAt && promoteDue(now);
    let claimed = sql.claimDue.all({ ...lease, limit });
    if (claimed.length < limit && !promotedFirst && promoteDue(now)) claimed = [...claimed, ...sql.claimDue.all({ ...lease, limit: limit - claimed.length })];
    moveCounts(StoredStatus.queued, StoredStatus.running, claimed.length, sum(claimed.map(claimedImageCount)));
    const jobs = claimed.map((values) => toClaimedJob(values, lease));
    for (const job of jobs) sql.insertEvent.run(job.id, job.attempts, EventKind.started, owner, null, null, now);
    // RETURNING gives no order guarantee: restore the claim order.
    return jobs.sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || a.id - b.id);
  };
  const claimDueTx = counted(claimRows);

  /** Where each way of ending an attempt leaves its job, as clients see it. */
  const endedIn = {
    [EventKind.succeeded]: StoredStatus.succeeded,
    [EventKind.retrying]: StoredStatus.queued,
    [EventKind.failed]: StoredStatus.failed,
    [EventKind.returned]: StoredStatus.queued,
  } as const;

  /** Ends an attempt with one of the guarded statements above; false when the attempt no longer held its job. */
  const endAttempt = (
    ref: AttemptRef, statement: Database.Statement<[Record<string, unknown>]>, params: Record<string, unknown>,
    kind: keyof typeof endedIn, now: number, error: JobError | null,
  ): boolean => {
    if (statement.run({ id: ref.jobId, owner: ref.owner, attempt: ref.attempt, now, ...params }).changes === 0) return false;
    moveCounts(StoredStatus.running, endedIn[kind], 1, sql.imageCount.get(ref.jobId) ?? 0);
    recordEvent(ref, kind, now, error);
    return true;
  };
  const endAttemptTx = counted(endAttempt);

  const completeRefs = (refs: readonly AttemptRef[], now: number): boolean[] =>
    refs.map((ref) => endAttempt(ref, sql.complete, {}, EventKind.succeeded, now, null));

  const completeAndClaimTx = counted(
    (refs: readonly AttemptRef[], now: number, owner: string, leaseMs: number, limit: number): CompleteAndClaimResult => ({
      completed: completeRefs(refs, now),
      claimed: limit > 0 ? claimRows(owner, now, leaseMs, limit) : [],
    }),
  );

  /** Requeues or fails every lost attempt's job; the ids of those failed (no attempts left) and how many were requeued. */
  const requeueLostTx = counted((now: number, deadOwners: readonly string[]): { requeued: number; failed: number[] } => {
    const failed: number[] = [];
    const lost = sql.lostJobs.all({ now, deadOwners: JSON.stringify(deadOwners) });
    for (const row of lost) {
      const ref = refOf(row);
      const params = { id: ref.jobId, owner: ref.owner, attempt: ref.attempt, now };
      // The lost attempt counts: a job that kills its process must not loop forever.
      const exhausted = row.attempts >= row.max_attempts;
      (exhausted ? sql.failLost : sql.requeueLost).run(params);
      if (exhausted) failed.push(row.id);
      moveCounts(StoredStatus.running, exhausted ? StoredStatus.failed : StoredStatus.queued, 1, row.image_count);
      recordEvent(ref, exhausted ? EventKind.failed : EventKind.lost, now, {
        code: 'attempt_lost',
        message: 'the attempt\'s process stopped or lost its lease',
      });
    }
    return { requeued: lost.length - failed.length, failed };
  });

  const cancelTx = counted((id: number, now: number): CancelResult | null => {
    const before = sql.getJob.get(id);
    if (!before) return null;
    const row = sql.cancel.get({ id, now });
    if (!row) return { job: toJob(before), cancelled: false, previous: null };
    moveCounts(before.status, StoredStatus.cancelled, 1, before.image_count);
    sql.insertEvent.run(id, before.attempts, EventKind.cancelled, before.lease_owner, 'cancelled', 'cancelled by request', now);
    return { job: toJob(row), cancelled: true, previous: before.status === JobStatus.running ? refOf(before) : null };
  });

  // A write read with get() runs in a transaction, whose COMMIT reports its own failure: outside
  // one, get() returns the RETURNING row and better-sqlite3 drops the error of the commit that
  // ends the statement (SQLITE_FULL on a full disk), so a verb would answer with a write that
  // never happened.
  const runNowTx = db.transaction((id: number, now: number): JobRow | undefined => sql.runNow.get({ id, now }));

  const pruneTx = counted((olderThan: number, keep: number): number[] => {
    const pruned = sql.pruneExpired.all({ olderThan, limit: PRUNE_BATCH });
    if (pruned.length < PRUNE_BATCH) pruned.push(...sql.pruneOverflow.all({ keep, limit: PRUNE_BATCH - pruned.length }));
    for (const row of pruned) moveCounts(row.status, null, 1, row.image_count);
    return pruned.map((row) => row.id);
  });

  const recountTx = db.transaction(() => {
    sql.zeroCounts.run();
    sql.recount.run();
  });

  const listeners: ((signal: JobSignal) => void)[] = [];
  /** Tells this process's listeners of a committed write (SQLite's writers share one process's view: see README). */
  const emit = (signal: JobSignal): void => {
    for (const listener of listeners) listener(signal);
  };
  const ended = (jobIds: readonly number[], status: JobStatus): void => {
    if (jobIds.length > 0) emit({ kind: 'ended', jobIds, status });
  };

  const verbs = surfaceDiskFull({
    async insertJobs(jobs: readonly NewJob[], now: number): Promise<StoredJob[]> {
      const stored = insertJobsTx.immediate(jobs, now);
      const created = stored.filter((entry) => entry.created);
      if (created.length > 0) emit({ kind: 'due', runAt: Math.min(...created.map((entry) => entry.job.runAt)) });
      return stored;
    },

    async makeDurable(): Promise<void> {
      await walSync?.sync();
    },

    async claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<Job[]> {
      return claimDueTx.immediate(owner, now, leaseMs, limit);
    },

    async heartbeat(ref: AttemptRef, now: number, leaseMs: number): Promise<boolean> {
      return sql.heartbeat.run({ id: ref.jobId, owner: ref.owner, attempt: ref.attempt, expires: now + leaseMs }).changes === 1;
    },

    async completeAndClaimDue(refs: readonly AttemptRef[], now: number, owner: string, leaseMs: number, limit: number): Promise<CompleteAndClaimResult> {
      const result = completeAndClaimTx.immediate(refs, now, owner, leaseMs, limit);
      ended(refs.filter((_, i) => result.completed[i]).map((ref) => ref.jobId), JobStatus.succeeded);
      return result;
    },

    async failAttempt(ref: AttemptRef, error: JobError, retryAt: number | null, now: number): Promise<FailOutcome> {
      const params = { code: error.code, message: clip(error.message) };
      if (retryAt === null) {
        if (!endAttemptTx.immediate(ref, sql.fail, params, EventKind.failed, now, error)) return null;
        ended([ref.jobId], JobStatus.failed);
        return 'failed';
      }
      if (!endAttemptTx.immediate(ref, sql.retry, { ...params, runAt: retryAt }, EventKind.retrying, now, error)) return null;
      emit({ kind: 'due', runAt: retryAt });
      return 'retrying';
    },

    async returnAttempt(ref: AttemptRef, now: number): Promise<boolean> {
      const returned = endAttemptTx.immediate(ref, sql.returnAttempt, {}, EventKind.returned, now, null);
      if (returned) emit({ kind: 'due', runAt: now });
      return returned;
    },

    async requeueLost(now: number, deadOwners: readonly string[] = []): Promise<number> {
      const { requeued, failed } = requeueLostTx.immediate(now, deadOwners);
      if (requeued > 0) emit({ kind: 'due', runAt: now });
      ended(failed, JobStatus.failed);
      return requeued + failed.length;
    },

    async runningOwners(): Promise<string[]> {
      return sql.runningOwners.all().map((row) => row.lease_owner);
    },

    async recordDelivered(ref: AttemptRef, index: number, image: DeliveredImage, now: number): Promise<boolean> {
      return (
        sql.deliverImage.run({
          id: ref.jobId, owner: ref.owner, attempt: ref.attempt, index, now, outputFormat: image.outputFormat,
          outputWidth: image.outputWidth, outputHeight: image.outputHeight, outputBytes: image.outputBytes,
          scaledToFit: image.scaledToFit ? 1 : 0, location: image.location,
        }).changes === 1
      );
    },

    async cancelJob(id: number, now: number): Promise<CancelResult | null> {
      const result = cancelTx.immediate(id, now);
      if (result?.cancelled) ended([id], JobStatus.cancelled);
      return result;
    },

    async runNow(id: number, now: number): Promise<Job | null> {
      // scheduled or queued → queued: the same state to clients, nothing to count.
      const row = runNowTx.immediate(id, now);
      if (!row) return null;
      emit({ kind: 'due', runAt: now });
      return toJob(row);
    },

    async findByIdempotencyKey(key: string): Promise<StoredJob | null> {
      const row = sql.byIdempotencyKey.get(key);
      return row ? storedEarlier(row) : null;
    },

    async getJob(id: number): Promise<Job | null> {
      const row = sql.getJob.get(id);
      return row ? toJob(row) : null;
    },

    async listImages(jobId: number): Promise<JobImage[]> {
      return sql.images.all(jobId).map(toImage);
    },

    async listEvents(jobId: number): Promise<JobEvent[]> {
      return sql.events.all(jobId).map(toEvent);
    },

    async listJobs(query: ListQuery): Promise<Job[]> {
      const page = { beforeId: query.beforeId ?? Number.MAX_SAFE_INTEGER, limit: query.limit };
      const { status } = query;
      if (status === undefined) return sql.list.all(page).map(toJob);
      // Clients' `queued` is two row states.
      const alsoStatus: StoredStatus = status === JobStatus.queued ? StoredStatus.scheduled : status;
      return sql.listByStatus.all({ ...page, status, alsoStatus }).map(toJob);
    },

    async recountJobs(): Promise<void> {
      recountTx.immediate();
    },

    async countByStatus(): Promise<Record<JobStatus, number>> {
      const counts = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const row of sql.counts.all()) counts[row.status] = row.jobs;
      return counts;
    },

    async liveCount(): Promise<number> {
      return sql.liveCount.get()?.n ?? 0;
    },

    async nextRunAt(): Promise<number | null> {
      return sql.nextRunAt.get()?.run_at ?? null;
    },

    async imageCounts(): Promise<{ pending: number; completed: number }> {
      const counts = { pending: 0, completed: 0 };
      for (const { status, images } of sql.counts.all()) {
        if (status === JobStatus.queued || status === JobStatus.running) counts.pending += images;
        else if (status === JobStatus.succeeded) counts.completed += images;
      }
      return counts;
    },

    async liveKeysAmong(keys: readonly string[]): Promise<Set<string>> {
      if (keys.length === 0) return new Set();
      return new Set(sql.liveKeysAmong.all(JSON.stringify(keys)).map((row) => row.input_key));
    },

    async existingJobIds(ids: readonly number[]): Promise<Set<number>> {
      if (ids.length === 0) return new Set();
      return new Set(sql.existingJobIds.all(JSON.stringify(ids)).map((row) => row.id));
    },

    async pruneTerminal(olderThan: number, keep: number): Promise<number[]> {
      return pruneTx.immediate(olderThan, keep);
    },

    async checkpoint(): Promise<{ busy: number; log: number; checkpointed: number }> {
      const [row] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
      return row ?? { busy: 0, log: 0, checkpointed: 0 };
    },

    /**
     * Runs the work. Instances sharing a SQLite file (processes on one host)
     * take no lock for it: their writes queue on the file's own lock, and each
     * step of a sweep is a transaction of its own, so two at once are safe,
     * only redundant.
     */
    async exclusively<T>(_name: string, work: () => Promise<T>): Promise<T | null> {
      return work();
    },

    /** Closes the descriptor `makeDurable` keeps on the WAL, then the database. */
    async close(): Promise<void> {
      await walSync?.close();
      db.close();
    },
  }, path.dirname(db.name));

  return {
    ...verbs,
    backend: 'sqlite' as const,

    onSignal(listener: (signal: JobSignal) => void): void {
      listeners.push(listener);
    },

    /**
     * SQLite's plan for one of the statements above (EXPLAIN QUERY PLAN), so
     * a test can hold the hot queries to their indexes.
     */
    queryPlan(statement: keyof typeof sql): string[] {
      const { source } = sql[statement];
      const names = [...new Set(source.match(/@\w+/g) ?? [])].map((name) => name.slice(1));
      const positional = (source.match(/\?/g) ?? []).map(() => null);
      const explain = db.prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${source}`);
      const rows = names.length > 0 ? explain.all(Object.fromEntries(names.map((name) => [name, null]))) : explain.all(...positional);
      return rows.map((row) => row.detail);
    },
  } satisfies JobStore & Record<string, unknown>;
}
