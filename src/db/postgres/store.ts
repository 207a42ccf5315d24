import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { JobStatus, jobStatuses, publicStatus, StoredStatus } from '../../jobs/states.js';
import type { JobSignal, JobStore } from '../../jobs/store.js';
import type { AttemptRef, Job, JobError, JobImage, NewJob, StoredJob } from '../../jobs/types.js';
import { clip, PROMOTE_BATCH, PROMOTE_INTERVAL_MS, PRUNE_BATCH } from '../limits.js';
import { storeError } from './errors.js';
import { toEvent, toImage, toJob, type EventRow, type ImageRow, type JobRow } from '../rows.js';
import { listenForSignals } from './signals.js';
import { sql, type Statement } from './statements.js';
import { createTransactions, type Transaction } from './transaction.js';

const LOST = {
  code: 'attempt_lost',
  message: 'the attempt\'s process stopped or lost its lease',
  lastMessage: 'the last attempt\'s process stopped or lost its lease',
};

/** What a statement ending attempts returns of each job it ended. */
interface EndedPgRow {
  id: number;
  status: StoredStatus;
  image_count: number;
  run_at: number;
  owner: string;
  attempt: number;
}

interface PrunedPgRow {
  id: number;
  status: StoredStatus;
  image_count: number;
}

export interface PostgresStoreOptions {
  readonly log: Logger;
  /** Names this instance in the signals it sends (and so tells them from other instances'); random when not given. */
  readonly instanceId?: string;
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);
const refOf = (row: JobRow): AttemptRef => ({ jobId: row.id, owner: row.lease_owner ?? '', attempt: row.attempts });
const refKey = (jobId: number, owner: string, attempt: number): string => `${jobId}\u0000${owner}\u0000${attempt}`;

/** The images of a job just stored, as their rows now stand (the schema's defaults: pending, nothing delivered). */
function newImages(jobId: number, job: NewJob): JobImage[] {
  return job.images.map((image, index) => ({
    jobId, index, ...image,
    status: 'pending', outputFormat: null, outputWidth: null, outputHeight: null, outputBytes: null, scaledToFit: false, location: null, deliveredAt: null,
  }));
}

/**
 * The job store on PostgreSQL, for one or several instances sharing a
 * database. Every verb is one transaction on a pooled connection, holding
 * it for its own statements only; writes made on behalf of an attempt are
 * fenced by its owner and attempt number. Claims skip rows other instances
 * hold (`FOR UPDATE SKIP LOCKED`). Each transaction that needs to tell other
 * instances sends one NOTIFY (more only past PostgreSQL's payload limit),
 * delivered at its commit; this instance's listeners get the same signals
 * right after the commit, and the store skips them when they come back.
 * Resolves once it listens for other instances' signals.
 */
export async function createPostgresStore(pool: pg.Pool, options: PostgresStoreOptions): Promise<JobStore> {
  const { log } = options;
  const instanceId = options.instanceId ?? randomUUID();
  const listeners: ((signal: JobSignal) => void)[] = [];

  const deliver = (signal: JobSignal): void => {
    for (const listener of listeners) {
      try {
        listener(signal);
      } catch (error) {
        log.error({ err: error, signal }, 'a job signal listener failed');
      }
    }
  };

  const listener = await listenForSignals({ connection: pool.options, instanceId, log, deliver, now: Date.now });

  const { connect, query, rows, transaction } = createTransactions(pool, instanceId, deliver);

  let nextPromoteAt = Number.NEGATIVE_INFINITY;
  /** Moves due scheduled jobs to queued (uncounted: both are `queued` to clients); false when none was due. */
  const promoteDue = async (tx: Transaction, now: number): Promise<boolean> => {
    nextPromoteAt = now + PROMOTE_INTERVAL_MS;
    return (await tx.changed(sql.promoteDue.bind(now, PROMOTE_BATCH))) > 0;
  };

  const claimRows = async (tx: Transaction, owner: string, now: number, leaseMs: number, limit: number): Promise<Job[]> => {
    const expires = now + leaseMs;
    const promotedFirst = now >= nextPromoteAt && (await promoteDue(tx, now));
    let claimed = await tx.rows<JobRow>(sql.claimDue.bind(owner, expires, now, limit));
    if (claimed.length < limit && !promotedFirst && (await promoteDue(tx, now))) {
      claimed = [...claimed, ...(await tx.rows<JobRow>(sql.claimDue.bind(owner, expires, now, limit - claimed.length)))];
    }
    tx.counts.move(StoredStatus.queued, StoredStatus.running, claimed.length, sum(claimed.map((row) => row.image_count)));
    // RETURNING gives no order: restore the claim's.
    return claimed.map(toJob).sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || a.id - b.id);
  };

  type EndStatement = Statement<[number[], string[], number[], number, string | null, string | null, ...number[]]>;

  /**
   * Ends `refs` with one of the fenced statements of `sql` and moves counts
   * and signals for the jobs it ended. Returns which refs held their job.
   */
  const endAttempts = async (
    tx: Transaction, statement: EndStatement, refs: readonly AttemptRef[], now: number, error: JobError | null, ...rest: number[]
  ): Promise<boolean[]> => {
    if (refs.length === 0) return [];
    const ended = await tx.rows<EndedPgRow>(statement.bind(
      refs.map((ref) => ref.jobId), refs.map((ref) => ref.owner), refs.map((ref) => ref.attempt), now,
      error?.code ?? null, error ? clip(error.message) : null, ...rest,
    ));
    const endedJobs = new Map<JobStatus, number[]>();
    for (const row of ended) {
      tx.counts.move(StoredStatus.running, row.status, 1, row.image_count);
      const status = publicStatus(row.status);
      if (status === JobStatus.queued) tx.signals.due(row.run_at);
      else endedJobs.set(status, [...(endedJobs.get(status) ?? []), row.id]);
    }
    for (const [status, ids] of endedJobs) tx.signals.end(status, ids);
    // A ref held its job when a row came back for it; a repeated ref counts once, as a second write would find the job ended.
    const held = new Set(ended.map((row) => refKey(row.id, row.owner, row.attempt)));
    return refs.map((ref) => held.delete(refKey(ref.jobId, ref.owner, ref.attempt)));
  };

  const storedEarlier = async (read: <R extends pg.QueryResultRow>(statement: pg.QueryConfig) => Promise<R[]>, row: JobRow): Promise<StoredJob> => ({
    job: toJob(row),
    images: (await read<ImageRow>(sql.images.bind(row.id))).map(toImage),
    created: false,
    requestFingerprint: row.request_fingerprint,
  });

  const insertOne = async (tx: Transaction, job: NewJob, now: number): Promise<StoredJob> => {
    const [row] = await tx.rows<JobRow>(sql.insertJob.bind(
      job.priority, job.maxAttempts, JSON.stringify(job.options), JSON.stringify(job.destination), job.idempotencyKey,
      job.requestFingerprint, job.inputKey, job.images.length, job.runAt, now,
      job.images.map((image) => image.originalName), job.images.map((image) => image.inputFormat), job.images.map((image) => image.width),
      job.images.map((image) => image.height), job.images.map((image) => image.pages), job.images.map((image) => image.inputBytes),
    ));
    if (!row) {
      // The key is taken, by a job committed before (or earlier in this batch): that job is the answer.
      const [existing] = await tx.rows<JobRow>(sql.byIdempotencyKey.bind(job.idempotencyKey ?? ''));
      if (!existing) throw new Error('an idempotency key conflicted with no job');
      return storedEarlier((statement) => tx.rows(statement), existing);
    }
    tx.counts.move(null, row.status, 1, row.image_count);
    tx.signals.due(row.run_at);
    return { job: toJob(row), images: newImages(row.id, job), created: true, requestFingerprint: row.request_fingerprint };
  };

  return {
    backend: 'postgres',

    onSignal(listen: (signal: JobSignal) => void): void {
      listeners.push(listen);
    },

    insertJobs(jobs: readonly NewJob[], now: number): Promise<StoredJob[]> {
      return transaction(async (tx) => {
        const stored: StoredJob[] = [];
        for (const job of jobs) stored.push(await insertOne(tx, job, now));
        return stored;
      });
    },

    /** Every commit is durable when it returns (`synchronous_commit` is on for the store's connections). */
    async makeDurable(): Promise<void> {},

    claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<Job[]> {
      return transaction((tx) => claimRows(tx, owner, now, leaseMs, limit));
    },

    async heartbeat(ref: AttemptRef, now: number, leaseMs: number): Promise<boolean> {
      return (await query(sql.heartbeat.bind(ref.jobId, ref.owner, ref.attempt, now + leaseMs))).rowCount === 1;
    },

    completeAndClaimDue(refs: readonly AttemptRef[], now: number, owner: string, leaseMs: number, limit: number) {
      return transaction(async (tx) => ({
        completed: await endAttempts(tx, sql.complete, refs, now, null),
        claimed: limit > 0 ? await claimRows(tx, owner, now, leaseMs, limit) : [],
      }));
    },

    failAttempt(ref: AttemptRef, error: JobError, retryAt: number | null, now: number) {
      return transaction(async (tx) => {
        const [held] = retryAt === null
          ? await endAttempts(tx, sql.fail, [ref], now, error)
          : await endAttempts(tx, sql.retry, [ref], now, error, retryAt);
        if (!held) return null;
        return retryAt === null ? 'failed' : 'retrying';
      });
    },

    async returnAttempt(ref: AttemptRef, now: number): Promise<boolean> {
      const [held] = await transaction((tx) => endAttempts(tx, sql.returnAttempt, [ref], now, null));
      return held ?? false;
    },

    requeueLost(now: number, deadOwners: readonly string[] = []): Promise<number> {
      return transaction(async (tx) => {
        const lost = await tx.rows<JobRow>(sql.lostJobs.bind(now, [...deadOwners]));
        // The lost attempt counts: a job that kills its process must not loop forever.
        const exhausted = lost.filter((row) => row.attempts >= row.max_attempts);
        const requeued = lost.filter((row) => row.attempts < row.max_attempts);
        await endAttempts(tx, sql.requeueLost, requeued.map(refOf), now, { code: LOST.code, message: LOST.message });
        await endAttempts(tx, sql.failLost, exhausted.map(refOf), now, { code: LOST.code, message: LOST.lastMessage });
        return lost.length;
      });
    },

    async runningOwners(): Promise<string[]> {
      return (await rows<{ lease_owner: string }>(sql.runningOwners.bind())).map((row) => row.lease_owner);
    },

    async recordDelivered(ref, index, image, now): Promise<boolean> {
      const delivered = await query(sql.deliverImage.bind(
        ref.jobId, ref.owner, ref.attempt, index, now, image.outputFormat, image.outputWidth, image.outputHeight, image.outputBytes,
        image.scaledToFit, image.location,
      ));
      return delivered.rowCount === 1;
    },

    cancelJob(id: number, now: number) {
      return transaction(async (tx) => {
        const [before] = await tx.rows<JobRow>(sql.lockJob.bind(id));
        if (!before) return null;
        const [row] = await tx.rows<JobRow>(sql.cancel.bind(id, now, before.attempts, before.lease_owner));
        if (!row) return { job: toJob(before), cancelled: false, previous: null };
        tx.counts.move(before.status, StoredStatus.cancelled, 1, before.image_count);
        tx.signals.end(JobStatus.cancelled, [id]);
        return { job: toJob(row), cancelled: true, previous: before.status === StoredStatus.running ? refOf(before) : null };
      });
    },

    runNow(id: number, now: number): Promise<Job | null> {
      // scheduled or queued → queued: the same state to clients, nothing to count.
      return transaction(async (tx) => {
        const [row] = await tx.rows<JobRow>(sql.runNow.bind(id, now));
        if (!row) return null;
        tx.signals.due(now);
        return toJob(row);
      });
    },

    async findByIdempotencyKey(key: string): Promise<StoredJob | null> {
      const [row] = await rows<JobRow>(sql.byIdempotencyKey.bind(key));
      return row ? storedEarlier(rows, row) : null;
    },

    async getJob(id: number): Promise<Job | null> {
      const [row] = await rows<JobRow>(sql.getJob.bind(id));
      return row ? toJob(row) : null;
    },

    async listImages(jobId: number): Promise<JobImage[]> {
      return (await rows<ImageRow>(sql.images.bind(jobId))).map(toImage);
    },

    async listEvents(jobId: number) {
      return (await rows<EventRow>(sql.events.bind(jobId))).map(toEvent);
    },

    async listJobs(listQuery) {
      const beforeId = listQuery.beforeId ?? Number.MAX_SAFE_INTEGER;
      const { status } = listQuery;
      if (status === undefined) return (await rows<JobRow>(sql.list.bind(beforeId, listQuery.limit))).map(toJob);
      // Clients' `queued` is two row states.
      const alsoStatus: StoredStatus = status === JobStatus.queued ? StoredStatus.scheduled : status;
      return (await rows<JobRow>(sql.listByStatus.bind(status, alsoStatus, beforeId, listQuery.limit))).map(toJob);
    },

    async countByStatus(): Promise<Record<JobStatus, number>> {
      const [row] = await rows<Record<string, number | null>>(sql.counts.bind());
      return Object.fromEntries(jobStatuses.map((status) => [status, row?.[status] ?? 0])) as Record<JobStatus, number>;
    },

    async liveCount(): Promise<number> {
      const [row] = await rows<{ n: number | null }>(sql.liveCount.bind());
      return row?.n ?? 0;
    },

    async imageCounts(): Promise<{ pending: number; completed: number }> {
      const [row] = await rows<Record<string, number | null>>(sql.counts.bind());
      return {
        pending: (row?.queued_images ?? 0) + (row?.running_images ?? 0),
        completed: row?.succeeded_images ?? 0,
      };
    },

    /** Counts every job again (a full scan), with writers of counts held off until it commits. */
    async recountJobs(): Promise<void> {
      await transaction(async (tx) => {
        await tx.changed(sql.lockCounts.bind());
        await tx.changed(sql.recount.bind());
      });
    },

    async nextRunAt(): Promise<number | null> {
      const [row] = await rows<{ run_at: number | null }>(sql.nextRunAt.bind());
      return row?.run_at ?? null;
    },

    async liveKeysAmong(keys: readonly string[]): Promise<Set<string>> {
      if (keys.length === 0) return new Set();
      return new Set((await rows<{ input_key: string }>(sql.liveKeysAmong.bind([...keys]))).map((row) => row.input_key));
    },

    async existingJobIds(ids: readonly number[]): Promise<Set<number>> {
      if (ids.length === 0) return new Set();
      return new Set((await rows<{ id: number }>(sql.existingJobIds.bind([...ids]))).map((row) => row.id));
    },

    pruneTerminal(olderThan: number, keep: number): Promise<number[]> {
      return transaction(async (tx) => {
        const pruned = await tx.rows<PrunedPgRow>(sql.pruneExpired.bind(olderThan, PRUNE_BATCH));
        if (pruned.length < PRUNE_BATCH) pruned.push(...(await tx.rows<PrunedPgRow>(sql.pruneOverflow.bind(keep, PRUNE_BATCH - pruned.length))));
        for (const row of pruned) tx.counts.move(row.status, null, 1, row.image_count);
        return pruned.map((row) => row.id);
      });
    },

    /** PostgreSQL keeps its write-ahead log itself. */
    async checkpoint(): Promise<null> {
      return null;
    },

    /**
     * Runs `work` holding a session advisory lock on `name`, on a connection
     * kept for it, so that one instance at a time runs it; null at once when
     * another session holds the lock.
     */
    async exclusively<T>(name: string, work: () => Promise<T>): Promise<T | null> {
      const client = await connect();
      // A connection that failed is closed rather than pooled: ending its session ends any lock it held.
      let failed: Error | undefined;
      const fail = (error: unknown): Error => (failed = error instanceof Error ? error : new Error(String(error)));
      try {
        const locked = await client.query<{ locked: boolean }>(sql.tryLock.bind(name)).then(
          (result) => result.rows[0]?.locked === true,
          (error: unknown) => Promise.reject(storeError(fail(error))),
        );
        if (!locked) return null;
        try {
          return await work();
        } finally {
          await client.query(sql.unlock.bind(name)).catch(fail);
        }
      } finally {
        client.release(failed);
      }
    },

    async close(): Promise<void> {
      await listener.stop();
      await pool.end();
    },
  };
}
