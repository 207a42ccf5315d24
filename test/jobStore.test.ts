import fc from 'fast-check';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PROMOTE_BATCH, PROMOTE_INTERVAL_MS, PRUNE_BATCH } from '../src/db/limits.js';
import { DatabaseFullError, DatabaseOpenError, storeError } from '../src/db/postgres/errors.js';
import { openPostgres, postgresMigrationsFolder } from '../src/db/postgres/open.js';
import { COUNT_SLOTS } from '../src/db/postgres/schema.js';
import { sql } from '../src/db/postgres/statements.js';
import { createPostgresStore } from '../src/db/postgres/store.js';
import { DiskFullError } from '../src/storage/diskFull.js';
import { StoreUnavailableError } from '../src/jobs/errors.js';
import type { JobSignal, JobStore } from '../src/jobs/store.js';
import type { AttemptRef, Job } from '../src/jobs/types.js';
import { newJob } from './support/db.js';
import { postgresAvailable, testPostgres } from './support/postgres.js';
import { keptCounts, storeBackends, type StoreFixture } from './support/stores.js';
import { waitFor } from './support/wait.js';

const LEASE = 30_000;
const image = { originalName: null, inputFormat: 'png', width: 1, height: 1, pages: 1, inputBytes: 1 };
const images = (n: number) => Array.from({ length: n }, () => image);
const refOf = (job: Job): AttemptRef => ({ jobId: job.id, owner: job.leaseOwner ?? '', attempt: job.attempts });
const delivered = { outputFormat: 'webp', outputWidth: 1, outputHeight: 1, outputBytes: 1, scaledToFit: false, location: 'x' };

async function insert(store: JobStore, overrides: Parameters<typeof newJob>[0] = {}, now = 1): Promise<Job> {
  const [stored] = await store.insertJobs([newJob(overrides)], now);
  if (!stored) throw new Error('nothing stored');
  return stored.job;
}

async function expectCountsKept({ store, rows }: StoreFixture): Promise<void> {
  expect(await keptCounts(store)).toEqual(await rows.countedThrough());
}

/** Signals a store delivers to its listener, kept in order. */
function heard(store: JobStore): JobSignal[] {
  const signals: JobSignal[] = [];
  store.onSignal((signal) => signals.push(signal));
  return signals;
}

describe.each(storeBackends)('the job store on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    describe('insertJobs', () => {
      it('stores jobs queued with their images in upload order, one transaction for the batch', async () => {
        const { store } = await backend.open();
        const pictures = [0, 1, 2].map((i) => ({ ...image, originalName: `${i}.png`, width: 10 + i }));
        const [first, second] = await store.insertJobs([newJob({ images: pictures, inputKey: 'k' }), newJob({ priority: 3 })], 1_000);
        expect(first).toMatchObject({ created: true, job: { status: 'queued', attempts: 0, createdAt: 1_000, inputKey: 'k' } });
        expect(second?.job.id).toBeGreaterThan(first!.job.id);
        const stored = await store.listImages(first!.job.id);
        expect(stored.map((row) => [row.index, row.originalName, row.width, row.status])).toEqual([
          [0, '0.png', 10, 'pending'],
          [1, '1.png', 11, 'pending'],
          [2, '2.png', 12, 'pending'],
        ]);
        expect(first!.images).toEqual(stored);
        expect(await store.getJob(first!.job.id)).toEqual(first!.job);
      });

      it('answers a repeated idempotency key with the first job, within a batch and across batches, storing nothing new', async () => {
        const { store } = await backend.open();
        const results = await store.insertJobs(
          [newJob({ idempotencyKey: 'k', requestFingerprint: 'f', images: images(2) }), newJob({ idempotencyKey: 'k', priority: 7 })],
          5,
        );
        expect(results.map((result) => result.created)).toEqual([true, false]);
        expect(results[1]).toMatchObject({ job: { id: results[0]!.job.id, priority: 0 }, requestFingerprint: 'f' });
        expect(results[1]!.images).toHaveLength(2);
        const [again] = await store.insertJobs([newJob({ idempotencyKey: 'k', priority: 9 })], 6);
        expect(again).toMatchObject({ created: false, job: { id: results[0]!.job.id } });
        expect(await store.findByIdempotencyKey('k')).toMatchObject({ created: false, requestFingerprint: 'f', job: { id: results[0]!.job.id } });
        expect(await store.findByIdempotencyKey('other')).toBeNull();
        expect(await store.listJobs({ limit: 10 })).toHaveLength(1);
      });

      it('never hands out an id twice, even after the newest job is pruned', async () => {
        const { store, rows } = await backend.open();
        const first = await insert(store);
        const second = await rows.jobInState('succeeded', { finishedAt: 1 });
        expect(await store.pruneTerminal(10, 0)).toEqual([second.id]);
        const third = await insert(store);
        expect(third.id).toBeGreaterThan(second.id);
        expect(third.id).toBeGreaterThan(first.id);
      });
    });

    describe('claimDue', () => {
      it('claims due jobs by priority, then oldest runAt, then id, no more than the limit, recording each start', async () => {
        const { store } = await backend.open();
        const low = await insert(store, { priority: 0, runAt: 10 });
        const highLate = await insert(store, { priority: 5, runAt: 20 });
        const highEarly = await insert(store, { priority: 5, runAt: 15 });
        const future = await insert(store, { priority: 9, runAt: 1_000 });
        const claimed = await store.claimDue('me', 100, LEASE, 2);
        expect(claimed.map((job) => job.id)).toEqual([highEarly.id, highLate.id]);
        expect(claimed.every((job) => job.status === 'running' && job.attempts === 1 && job.leaseOwner === 'me' && job.leaseExpiresAt === 100 + LEASE)).toBe(true);
        expect(await store.getJob(claimed[0]!.id)).toEqual(claimed[0]);
        expect((await store.claimDue('me', 100, LEASE, 5)).map((job) => job.id)).toEqual([low.id]);
        expect((await store.getJob(future.id))?.status).toBe('queued');
        expect(await store.nextRunAt()).toBe(1_000);
        expect((await store.listEvents(highEarly.id)).map((event) => [event.kind, event.attempt, event.leaseOwner])).toEqual([['started', 1, 'me']]);
        expect(await store.countByStatus()).toMatchObject({ queued: 1, running: 3 });
      });

      it('completes attempts and claims due jobs in one transaction, a stale attempt completing nothing', async () => {
        const { store } = await backend.open();
        const first = await insert(store, { runAt: 1 });
        const second = await insert(store, { runAt: 2 });
        await insert(store, { runAt: 1_000 });
        const [claimed] = await store.claimDue('me', 10, LEASE, 1);
        const stale = { jobId: first.id, owner: 'me', attempt: 7 };
        const result = await store.completeAndClaimDue([refOf(claimed!), stale, refOf(claimed!)], 20, 'me', LEASE, 5);
        expect(result.completed).toEqual([true, false, false]);
        expect(result.claimed.map((job) => job.id)).toEqual([second.id]);
        expect(await store.getJob(first.id)).toMatchObject({ status: 'succeeded', finishedAt: 20, leaseOwner: null });
        expect((await store.listEvents(first.id)).map((event) => event.kind)).toEqual(['started', 'succeeded']);
        expect(await store.completeAndClaimDue([], 30, 'me', LEASE, 0)).toEqual({ completed: [], claimed: [] });
      });

      it('gives every job to exactly one of several instances claiming at once, counts kept through recounts meanwhile', async () => {
        const fixture = await backend.open();
        const stores = [fixture.store, ...(await Promise.all([1, 2, 3].map(() => fixture.anotherInstance())))];
        const total = 500;
        await fixture.store.insertJobs(Array.from({ length: total }, (_, i) => newJob({ priority: i % 3 })), 1);
        const claims = new Map<number, string[]>();
        let claiming = true;
        const recounts = (async () => {
          let n = 0;
          for (; claiming; n++) await fixture.store.recountJobs();
          return n;
        })();
        await Promise.all(stores.map(async (store, n) => {
          const owner = `instance-${n}`;
          let held: readonly Job[] = [];
          for (;;) {
            const { claimed } = await store.completeAndClaimDue(held.map(refOf), 10, owner, LEASE, 5);
            if (claimed.length === 0 && held.length === 0) return;
            for (const job of claimed) claims.set(job.id, [...(claims.get(job.id) ?? []), owner]);
            held = claimed;
          }
        }));
        claiming = false;
        expect(await recounts).toBeGreaterThan(0);
        expect(claims.size).toBe(total);
        expect([...claims.values()].filter((owners) => owners.length !== 1)).toEqual([]);
        expect(new Set([...claims.values()].flat()).size).toBeGreaterThan(1);
        expect(await fixture.store.countByStatus()).toMatchObject({ queued: 0, running: 0, succeeded: total });
        await expectCountsKept(fixture);
      });
    });

    describe('jobs waiting for a later runAt', () => {
      it('are queued to clients and scheduled in their row, outside the claim, until their runAt', async () => {
        const { store, rows } = await backend.open();
        const job = await insert(store, { runAt: 1_000 }, 10);
        expect(job.status).toBe('queued');
        expect(await rows.rowStatus(job.id)).toBe('scheduled');
        expect((await store.listJobs({ limit: 10, status: 'queued' })).map((listed) => listed.id)).toEqual([job.id]);
        expect(await store.claimDue('me', 999, LEASE, 5)).toEqual([]);
        expect((await store.claimDue('me', 1_000, LEASE, 5)).map((claimed) => claimed.id)).toEqual([job.id]);
        expect(await store.nextRunAt()).toBeNull();
      });

      it('are promoted at most PROMOTE_BATCH per claim, oldest first, and at least once per PROMOTE_INTERVAL_MS under load', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        const total = PROMOTE_BATCH + 200;
        const stored = await store.insertJobs(Array.from({ length: total }, (_, i) => newJob({ runAt: 100 + i })), 1);
        const [first] = await store.claimDue('me', 10_000, LEASE, 1);
        expect(first?.runAt).toBe(100);
        const statuses = await Promise.all(stored.map(({ job }) => rows.rowStatus(job.id)));
        expect(statuses.filter((status) => status === 'queued')).toHaveLength(PROMOTE_BATCH - 1);
        expect(statuses.slice(PROMOTE_BATCH)).toEqual(Array(200).fill('scheduled'));
        expect(await store.nextRunAt()).toBeLessThanOrEqual(10_000);
        const last = stored[total - 1]!.job.id;
        await store.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS - 1, LEASE, 1);
        expect(await rows.rowStatus(last)).toBe('scheduled');
        await store.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS, LEASE, 1);
        expect(await rows.rowStatus(last)).toBe('queued');
        await expectCountsKept(fixture);
      });

      it('are promoted by a claim that finds fewer queued jobs than it asks for, however recent the last promotion', async () => {
        const { store } = await backend.open();
        await insert(store, { runAt: 5 });
        expect(await store.claimDue('me', 5, LEASE, 5)).toHaveLength(1);
        const job = await insert(store, { runAt: 6 });
        expect((await store.claimDue('me', 6, LEASE, 5)).map((claimed) => claimed.id)).toEqual([job.id]);
      });

      it('are made due at once by runNow; a job not waiting is not', async () => {
        const { store, rows } = await backend.open();
        const later = await insert(store, { runAt: 50_000 });
        const running = await rows.jobInState('running');
        expect(await store.runNow(later.id, 30)).toMatchObject({ id: later.id, status: 'queued', runAt: 30 });
        expect(await rows.rowStatus(later.id)).toBe('queued');
        expect(await store.runNow(running.id, 30)).toBeNull();
        expect(await store.runNow(999_999, 30)).toBeNull();
        expect((await store.claimDue('me', 31, LEASE, 5)).map((job) => job.id)).toEqual([later.id]);
      });
    });

    describe('attempt writes are fenced by owner and attempt', () => {
      it('ignore a late attempt after its job was requeued and claimed again', async () => {
        const { store } = await backend.open();
        const job = await insert(store, { images: images(1) });
        const [first] = await store.claimDue('old', 10, 100, 1);
        expect(await store.requeueLost(10 + 101)).toBe(1);
        const [second] = await store.claimDue('new', 200, LEASE, 1);
        expect(second?.attempts).toBe(2);
        const late = refOf(first!);
        expect(await store.heartbeat(late, 300, LEASE)).toBe(false);
        expect(await store.completeAndClaimDue([late], 300, 'old', LEASE, 0)).toEqual({ completed: [false], claimed: [] });
        expect(await store.failAttempt(late, { code: 'x', message: 'late' }, null, 300)).toBeNull();
        expect(await store.failAttempt(late, { code: 'x', message: 'late' }, 400, 300)).toBeNull();
        expect(await store.returnAttempt(late, 300)).toBe(false);
        expect(await store.recordDelivered(late, 0, delivered, 300)).toBe(false);
        expect(await store.getJob(job.id)).toMatchObject({ status: 'running', leaseOwner: 'new', attempts: 2, leaseExpiresAt: 200 + LEASE });
        expect((await store.listImages(job.id))[0]?.status).toBe('pending');
        const current = refOf(second!);
        expect(await store.heartbeat(current, 300, LEASE)).toBe(true);
        expect(await store.recordDelivered(current, 0, delivered, 310)).toBe(true);
        expect((await store.listImages(job.id))[0]).toMatchObject({ status: 'delivered', outputFormat: 'webp', location: 'x', deliveredAt: 310 });
        expect((await store.completeAndClaimDue([current], 400, 'new', LEASE, 0)).completed).toEqual([true]);
        expect(await store.getJob(job.id)).toMatchObject({ status: 'succeeded', finishedAt: 400, leaseOwner: null, leaseExpiresAt: null });
      });

      it('ignore the same owner\'s earlier attempt number', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        await store.claimDue('me', 10, LEASE, 1);
        await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'e', message: 'm' }, 20, 10);
        await store.claimDue('me', 20, LEASE, 1);
        expect((await store.completeAndClaimDue([{ jobId: job.id, owner: 'me', attempt: 1 }], 30, 'me', LEASE, 0)).completed).toEqual([false]);
        expect((await store.getJob(job.id))?.status).toBe('running');
      });
    });

    describe('ending attempts', () => {
      it('retries at the given time, keeping the error, then fails for good', async () => {
        const { store, rows } = await backend.open();
        const job = await insert(store);
        await store.claimDue('me', 10, LEASE, 1);
        expect(await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 5_000, 10)).toBe('retrying');
        expect(await store.getJob(job.id)).toMatchObject({ status: 'queued', runAt: 5_000, attempts: 1, lastError: { code: 'network', message: 'reset' } });
        expect(await rows.rowStatus(job.id)).toBe('scheduled');
        expect(await store.claimDue('me', 4_999, LEASE, 1)).toHaveLength(0);
        await store.claimDue('me', 5_000, LEASE, 1);
        expect(await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 2 }, { code: 'image_corrupt', message: 'bad' }, null, 6_000)).toBe('failed');
        expect(await store.getJob(job.id)).toMatchObject({ status: 'failed', finishedAt: 6_000, lastError: { code: 'image_corrupt' } });
        expect((await store.listEvents(job.id)).map((event) => [event.kind, event.attempt, event.error?.code ?? null])).toEqual([
          ['started', 1, null],
          ['retrying', 1, 'network'],
          ['started', 2, null],
          ['failed', 2, 'image_corrupt'],
        ]);
      });

      it('keeps a retry due at once queued in its row, and bounds a runaway error message', async () => {
        const { store, rows } = await backend.open();
        const job = await insert(store);
        await store.claimDue('me', 10, LEASE, 1);
        await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm'.repeat(10_000) }, 10, 10);
        expect(await rows.rowStatus(job.id)).toBe('queued');
        expect((await store.getJob(job.id))?.lastError?.message.length).toBeLessThan(2_100);
      });

      it('returns an interrupted attempt uncounted, at its place in the queue', async () => {
        const fixture = await backend.open();
        const { store } = fixture;
        const job = await insert(store, { runAt: 5 });
        await store.claimDue('me', 10, LEASE, 1);
        const later = await insert(store, { runAt: 15 }, 15);
        expect(await store.returnAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, 20)).toBe(true);
        expect(await store.getJob(job.id)).toMatchObject({ status: 'queued', attempts: 0, runAt: 5, leaseOwner: null, updatedAt: 20 });
        expect((await store.listEvents(job.id)).map((event) => [event.kind, event.attempt])).toEqual([['started', 1], ['returned', 1]]);
        await expectCountsKept(fixture);
        expect((await store.claimDue('me', 30, LEASE, 2)).map((claimed) => claimed.id)).toEqual([job.id, later.id]);
      });

      it('cancels waiting and running jobs, naming the attempt to abort, but not ended ones', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        const queued = await insert(store);
        const scheduled = await insert(store, { runAt: 50_000 });
        const running = await rows.jobInState('running', { leaseOwner: 'me' });
        const done = await rows.jobInState('succeeded');
        expect(await store.cancelJob(queued.id, 5)).toMatchObject({ cancelled: true, previous: null, job: { status: 'cancelled', finishedAt: 5 } });
        expect(await store.cancelJob(scheduled.id, 5)).toMatchObject({ cancelled: true, previous: null });
        expect(await store.cancelJob(running.id, 5)).toMatchObject({
          cancelled: true, previous: { jobId: running.id, owner: 'me', attempt: 1 }, job: { leaseOwner: null, lastError: { code: 'cancelled' } },
        });
        expect(await store.cancelJob(done.id, 5)).toMatchObject({ cancelled: false, previous: null, job: { status: 'succeeded' } });
        expect(await store.cancelJob(999_999, 5)).toBeNull();
        expect((await store.listEvents(running.id)).map((event) => [event.kind, event.attempt, event.leaseOwner])).toEqual([['cancelled', 1, 'me']]);
        expect(await store.runNow(queued.id, 6)).toBeNull();
        await expectCountsKept(fixture);
      });
    });

    describe('requeueLost', () => {
      it('requeues jobs whose lease expired or whose owner is dead, and fails those out of attempts', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        const expired = await rows.jobInState('running', { leaseOwner: 'a', leaseExpiresAt: 50 });
        const alive = await rows.jobInState('running', { leaseOwner: 'b', leaseExpiresAt: 500 });
        const dead = await rows.jobInState('running', { leaseOwner: 'c', leaseExpiresAt: 500 });
        const exhausted = await rows.jobInState('running', { leaseOwner: 'c', leaseExpiresAt: 500, attempts: 3 });
        expect((await store.runningOwners()).sort()).toEqual(['a', 'b', 'c']);
        expect(await store.requeueLost(100, ['c'])).toBe(3);
        expect(await store.getJob(expired.id)).toMatchObject({ status: 'queued', runAt: 100, attempts: 1, lastError: { code: 'attempt_lost' } });
        expect((await store.getJob(alive.id))?.status).toBe('running');
        expect((await store.getJob(dead.id))?.status).toBe('queued');
        expect(await store.getJob(exhausted.id)).toMatchObject({ status: 'failed', finishedAt: 100, lastError: { code: 'attempt_lost' } });
        expect((await store.listEvents(expired.id)).map((event) => [event.kind, event.leaseOwner])).toEqual([['lost', 'a']]);
        expect((await store.listEvents(exhausted.id)).map((event) => event.kind)).toEqual(['failed']);
        expect(await store.runningOwners()).toEqual(['b']);
        expect(await store.requeueLost(100)).toBe(0);
        await expectCountsKept(fixture);
      });
    });

    describe('pruneTerminal', () => {
      it('deletes terminal jobs past the TTL, then all but the newest N, with their images and events', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        const old = await rows.jobInState('failed', { finishedAt: 10, job: { images: images(1) } });
        const kept = await Promise.all([100, 200, 300].map((at) => rows.jobInState('succeeded', { finishedAt: at })));
        const cancelled = await rows.jobInState('cancelled', { finishedAt: 150 });
        const live = [await rows.jobInState('queued'), await rows.jobInState('running')];
        const removed = await store.pruneTerminal(50, 2);
        expect(removed.sort((a, b) => a - b)).toEqual([old.id, kept[0]!.id, cancelled.id].sort((a, b) => a - b));
        expect(await store.listImages(old.id)).toEqual([]);
        expect(await store.listEvents(old.id)).toEqual([]);
        expect(await store.existingJobIds([old.id, kept[1]!.id, kept[2]!.id, ...live.map((job) => job.id)])).toEqual(
          new Set([kept[1]!.id, kept[2]!.id, ...live.map((job) => job.id)]),
        );
        await expectCountsKept(fixture);
      });

      it('deletes at most PRUNE_BATCH jobs a call, and nothing once none is left to prune', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        await store.insertJobs(Array.from({ length: PRUNE_BATCH + 50 }, () => newJob({ images: images(1) })), 1);
        await rows.endAllBehindTheBack('succeeded', 5);
        await store.recountJobs();
        const live = await insert(store);
        expect(await store.pruneTerminal(10, 0)).toHaveLength(PRUNE_BATCH);
        expect(await store.pruneTerminal(10, 0)).toHaveLength(50);
        expect(await store.pruneTerminal(10, 0)).toEqual([]);
        expect((await store.listJobs({ limit: 10 })).map((job) => job.id)).toEqual([live.id]);
        expect(await store.countByStatus()).toMatchObject({ queued: 1, succeeded: 0 });
        await expectCountsKept(fixture);
      });
    });

    describe('reads', () => {
      it('list newest first with a keyset cursor and a status filter', async () => {
        const { store, rows } = await backend.open();
        const ids: number[] = [];
        for (let i = 0; i < 5; i++) ids.push((await insert(store)).id);
        const failed = await rows.jobInState('failed');
        const page1 = await store.listJobs({ limit: 3 });
        expect(page1.map((job) => job.id)).toEqual([failed.id, ids[4], ids[3]]);
        const page2 = await store.listJobs({ limit: 3, beforeId: page1[2]!.id });
        expect(page2.map((job) => job.id)).toEqual([ids[2], ids[1], ids[0]]);
        expect((await store.listJobs({ limit: 10, status: 'failed' })).map((job) => job.id)).toEqual([failed.id]);
      });

      it('name the temp-file keys a waiting or running job owns, and no others', async () => {
        const { store, rows } = await backend.open();
        await insert(store, { inputKey: 'due' });
        await insert(store, { inputKey: 'later', runAt: 1_000 });
        await rows.jobInState('running', { job: { inputKey: 'running' } });
        await rows.jobInState('succeeded', { job: { inputKey: 'done' } });
        expect(await store.liveKeysAmong(['due', 'later', 'running', 'done', 'unknown'])).toEqual(new Set(['due', 'later', 'running']));
        expect(await store.liveKeysAmong([])).toEqual(new Set());
        expect(await store.existingJobIds([])).toEqual(new Set());
      });
    });

    describe('job counts', () => {
      it('equal a full recount after any sequence of verbs', async () => {
        const fixture = await backend.open();
        const { store } = fixture;
        const verb = fc.oneof(
          fc.record({ kind: fc.constant('insert' as const), delay: fc.integer({ min: -5, max: 50 }), images: fc.integer({ min: 0, max: 3 }) }),
          fc.record({ kind: fc.constant('claim' as const), limit: fc.integer({ min: 1, max: 3 }) }),
          fc.record({ kind: fc.constantFrom('complete' as const, 'retry' as const, 'fail' as const, 'return' as const, 'cancel' as const, 'runNow' as const), pick: fc.nat() }),
          fc.record({ kind: fc.constantFrom('lose' as const, 'prune' as const, 'tick' as const) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(verb, { minLength: 1, maxLength: 25 }), async (verbs) => {
            let now = (await store.nextRunAt()) ?? 1_000;
            for (const step of verbs) {
              now += 10;
              const running = await store.listJobs({ limit: 50, status: 'running' });
              const waiting = await store.listJobs({ limit: 50, status: 'queued' });
              const pick = <T>(list: readonly T[], n: number): T | undefined => list[n % Math.max(list.length, 1)];
              switch (step.kind) {
                case 'insert': await store.insertJobs([newJob({ runAt: now + step.delay, images: images(step.images), maxAttempts: 2 })], now); break;
                case 'claim': await store.claimDue('me', now, 20, step.limit); break;
                case 'complete': { const job = pick(running, step.pick); if (job) await store.completeAndClaimDue([refOf(job)], now, 'me', 20, 1); break; }
                case 'retry': { const job = pick(running, step.pick); if (job) await store.failAttempt(refOf(job), { code: 'x', message: 'm' }, now + 15, now); break; }
                case 'fail': { const job = pick(running, step.pick); if (job) await store.failAttempt(refOf(job), { code: 'x', message: 'm' }, null, now); break; }
                case 'return': { const job = pick(running, step.pick); if (job) await store.returnAttempt(refOf(job), now); break; }
                case 'cancel': { const job = pick([...running, ...waiting], step.pick); if (job) await store.cancelJob(job.id, now); break; }
                case 'runNow': { const job = pick(waiting, step.pick); if (job) await store.runNow(job.id, now); break; }
                case 'lose': await store.requeueLost(now); break;
                case 'prune': await store.pruneTerminal(now - 30, 3); break;
                case 'tick': now += 100; break;
              }
            }
            await expectCountsKept(fixture);
          }),
          { numRuns: 25 },
        );
      });

      it('are counted again by recountJobs after rows changed behind the store\'s back', async () => {
        const fixture = await backend.open();
        const { store, rows } = fixture;
        await store.insertJobs([newJob({ images: images(2) }), newJob({ images: images(1) })], 1);
        await rows.endAllBehindTheBack('succeeded', 5);
        expect(await keptCounts(store)).not.toEqual(await rows.countedThrough());
        await store.recountJobs();
        await expectCountsKept(fixture);
        expect(await store.imageCounts()).toEqual({ pending: 0, completed: 3 });
      });
    });

    describe('signals', () => {
      it.skipIf(!backend.acrossInstances)('reach this instance once, right after the commit, and every other instance sharing the store', async () => {
        const fixture = await backend.open('first');
        const other = await fixture.anotherInstance('second');
        const here = heard(fixture.store);
        const there = heard(other);
        const job = await insert(fixture.store, { runAt: 40 }, 30);
        expect(here).toEqual([{ kind: 'due', runAt: 40 }]);
        await waitFor(() => there.length === 1);
        expect(there).toEqual([{ kind: 'due', runAt: 40 }]);

        const [claimed] = await other.claimDue('second', 50, LEASE, 1);
        await other.completeAndClaimDue([refOf(claimed!)], 60, 'second', LEASE, 0);
        await waitFor(() => here.length === 2);
        expect(here[1]).toEqual({ kind: 'ended', jobIds: [job.id], status: 'succeeded' });

        const cancelled = await insert(other, {}, 70);
        await fixture.store.cancelJob(cancelled.id, 80);
        await waitFor(() => there.length === 4);
        expect(there.slice(1)).toEqual([
          { kind: 'ended', jobIds: [job.id], status: 'succeeded' },
          { kind: 'due', runAt: 0 },
          { kind: 'ended', jobIds: [cancelled.id], status: 'cancelled' },
        ]);
        // Nothing came back twice to the instance that wrote it.
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(here).toHaveLength(4);
        expect(there).toHaveLength(4);
      });

      it('say due for retries, returns, run-now and requeued jobs, and ended for failures, lost last attempts included', async () => {
        const { store, rows } = await backend.open();
        const signals = heard(store);
        const [a, b, c] = await store.insertJobs([newJob(), newJob(), newJob({ runAt: 9_000 })], 1);
        await store.claimDue('me', 10, LEASE, 2);
        await store.failAttempt({ jobId: a!.job.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm' }, 500, 20);
        await store.returnAttempt({ jobId: b!.job.id, owner: 'me', attempt: 1 }, 30);
        await store.runNow(c!.job.id, 40);
        const lost = await rows.jobInState('running', { leaseExpiresAt: 1, attempts: 3 });
        const requeued = await rows.jobInState('running', { leaseExpiresAt: 1 });
        signals.length = 0;
        await store.requeueLost(50);
        expect(signals).toEqual([{ kind: 'due', runAt: 50 }, { kind: 'ended', jobIds: [lost.id], status: 'failed' }]);
        expect((await store.getJob(requeued.id))?.status).toBe('queued');
        const [claimed] = await store.claimDue('me', 60, LEASE, 1);
        signals.length = 0;
        await store.failAttempt(refOf(claimed!), { code: 'x', message: 'm' }, null, 70);
        expect(signals).toEqual([{ kind: 'ended', jobIds: [claimed!.id], status: 'failed' }]);
      });

      it.skipIf(!backend.acrossInstances)('carry thousands of ended jobs, split over notifications PostgreSQL accepts', async () => {
        const fixture = await backend.open();
        const other = await fixture.anotherInstance();
        const there = heard(other);
        const total = 3_000;
        await fixture.store.insertJobs(Array.from({ length: total }, () => newJob()), 1);
        const claimed = await fixture.store.claimDue('me', 10, LEASE, total);
        await fixture.store.completeAndClaimDue(claimed.map(refOf), 20, 'me', LEASE, 0);
        const ended = () => there.flatMap((signal) => (signal.kind === 'ended' ? signal.jobIds : []));
        await waitFor(() => ended().length === total);
        expect(new Set(ended())).toEqual(new Set(claimed.map((job) => job.id)));
      });
    });

    describe('exclusively', () => {
      it.skipIf(!backend.acrossInstances)('runs work of one name on one instance at a time, and again once it is done', async () => {
        const fixture = await backend.open();
        const other = await fixture.anotherInstance();
        let release!: () => void;
        const holding = fixture.store.exclusively('sweep', () => new Promise<string>((resolve) => { release = () => resolve('first'); }));
        await waitFor(() => release !== undefined);
        expect(await other.exclusively('sweep', async () => 'second')).toBeNull();
        expect(await other.exclusively('another name', async () => 'other work')).toBe('other work');
        release();
        expect(await holding).toBe('first');
        expect(await other.exclusively('sweep', async () => 'second')).toBe('second');
        await expect(fixture.store.exclusively('sweep', async () => { throw new Error('work failed'); })).rejects.toThrow('work failed');
        expect(await other.exclusively('sweep', async () => 'after a failure')).toBe('after a failure');
      });
    });
  });
});

const silent = pino({ level: 'silent' });
const onPostgres = await postgresAvailable();

describe.skipIf(!onPostgres)('PostgreSQL', () => {
  it('applies migrations once when several instances start at once', async () => {
    const url = await testPostgres();
    const pools = await Promise.all([1, 2, 3, 4].map(() => openPostgres(url, { log: silent })));
    try {
      const { readMigrationFiles } = await import('drizzle-orm/migrator');
      const migrations = readMigrationFiles({ migrationsFolder: postgresMigrationsFolder });
      const { rows } = await pools[0]!.query<{ hash: string }>(`SELECT hash FROM drizzle.__drizzle_migrations ORDER BY id`);
      expect(rows.map((row) => row.hash)).toEqual(migrations.map((migration) => migration.hash));
      const { rows: [slots] } = await pools[0]!.query<{ n: number }>(`SELECT count(*) AS n FROM job_counts`);
      expect(slots?.n).toBe(COUNT_SLOTS);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it('commits synchronously on every connection and reads int8 as numbers there only', async () => {
    const url = await testPostgres();
    const pool = await openPostgres(url, { log: silent });
    try {
      const { rows: [row] } = await pool.query<{ synchronous_commit: string }>(`SHOW synchronous_commit`);
      expect(row?.synchronous_commit).toBe('on');
      const { rows: [big] } = await pool.query<{ n: unknown }>(`SELECT 9007199254740991::bigint AS n`);
      expect(big?.n).toBe(Number.MAX_SAFE_INTEGER);
      expect(pg.types.getTypeParser(20)('12')).toBe('12');
    } finally {
      await pool.end();
    }
  });

  it('plans the claim, promotion, next due time, sweeper and counts on their indexes, never reading the queue through', async () => {
    const url = await testPostgres();
    const pool = await openPostgres(url, { log: silent });
    const store = await createPostgresStore(pool, { log: silent });
    const client = await pool.connect();
    try {
      // A queue large enough for the planner to see a scan of it as costly: half due, half scheduled, some ended.
      await store.insertJobs(Array.from({ length: 4_000 }, (_, i) => newJob({ runAt: i % 2 === 0 ? 0 : 10_000_000, inputKey: `k${i}` })), 1);
      await store.claimDue('me', 2, LEASE, 50);
      await client.query(`UPDATE jobs SET status = 'succeeded', finished_at = id WHERE id > 3900`);
      await client.query('ANALYZE');
      // The plan a prepared statement settles on once its values stop mattering.
      await client.query('SET plan_cache_mode = force_generic_plan');
      await client.query('BEGIN');
      const plan = async (statement: { text: string }, values: unknown[]): Promise<string> =>
        (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${statement.text}`, values)).rows.map((row) => row['QUERY PLAN']).join('\n');
      const claim = await plan(sql.claimDue, ['me', 1, 1, 5]);
      expect(claim).toContain('Index Scan using jobs_claim_idx');
      expect(claim).toContain('Index Scan using jobs_pkey');
      const promote = await plan(sql.promoteDue, [1, 1_000]);
      expect(promote).toContain('jobs_scheduled_idx');
      expect(promote).toContain('Index Scan using jobs_pkey');
      const next = await plan(sql.nextRunAt, []);
      expect(next).toMatch(/jobs_claim_idx[\s\S]*jobs_scheduled_idx/);
      expect(await plan(sql.pruneExpired, [5, 200])).toContain('jobs_finished_idx');
      expect(await plan(sql.liveKeysAmong, [['k1', 'k2']])).toContain('jobs_input_key_idx');
      expect(await plan(sql.byIdempotencyKey, ['k'])).toContain('jobs_idempotency_key_idx');
      for (const text of [claim, promote, next]) expect(text).not.toContain('Seq Scan');
      for (const text of [claim, next]) expect(text).not.toMatch(/^\s*(->\s*)?Sort/m);
      for (const statement of [sql.counts, sql.liveCount]) expect(await plan(statement, [])).not.toMatch(/\bon jobs\b/);
      await client.query('ROLLBACK');
    } finally {
      client.release();
      await store.close();
    }
  });

  it('refuses to start on a malformed URL or an unreachable server, in one line naming the URL without its password', async () => {
    await expect(openPostgres('mysql://localhost/db', { log: silent })).rejects.toThrow(DatabaseOpenError);
    const unreachable = openPostgres('postgres://app:secret@127.0.0.1:1/jobs', { log: silent, connectTimeoutMs: 2_000 });
    await expect(unreachable).rejects.toMatchObject({ url: 'postgres://app:***@127.0.0.1:1/jobs', message: expect.stringMatching(/^cannot connect: .*ECONNREFUSED/) });
    await expect(unreachable).rejects.not.toMatchObject({ message: expect.stringContaining('\n') });
    const missing = new URL(await testPostgres());
    missing.pathname = '/imgjobs_never_made';
    await expect(openPostgres(missing.toString(), { log: silent })).rejects.toThrow(/^cannot connect: database "imgjobs_never_made" does not exist$/);
  });

  it('takes a full server disk for a full disk, a server that will not serve for an unavailable one, and leaves other errors as they are', () => {
    const full = storeError(Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }));
    expect(full).toBeInstanceOf(DatabaseFullError);
    expect(full).toBeInstanceOf(DiskFullError);
    expect(full).toMatchObject({ code: 'disk_full', permanent: false });
    for (const [message, code] of [['connect ECONNREFUSED', 'ECONNREFUSED'], ['sorry, too many clients already', '53300'], ['the database system is starting up', '57P03']]) {
      const unavailable = storeError(Object.assign(new Error(message), { code }));
      expect(unavailable, code).toBeInstanceOf(StoreUnavailableError);
      expect(unavailable, code).toMatchObject({ code: 'database_unavailable', permanent: false, outlastsAttempts: true });
    }
    expect(storeError(new Error('Connection terminated unexpectedly'))).toBeInstanceOf(StoreUnavailableError);
    const violation = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
    expect(storeError(violation)).toBe(violation);
  });

  it('listens again after its connection is cut, and tells the scheduler to look once', async () => {
    const url = await testPostgres();
    const store = await createPostgresStore(await openPostgres(url, { log: silent }), { log: silent });
    const other = await createPostgresStore(await openPostgres(url, { log: silent }), { log: silent });
    try {
      const signals = heard(store);
      const before = Date.now();
      const admin = await openPostgres(url, { log: silent, maxConnections: 1 });
      const { rows } = await admin.query<{ killed: boolean }>(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN image_jobs'`,
      );
      await admin.end();
      expect(rows.map((row) => row.killed)).toEqual([true, true]);
      await waitFor(() => signals.some((signal) => signal.kind === 'due'), 10_000);
      expect(signals[0]).toMatchObject({ kind: 'due' });
      expect((signals[0] as { runAt: number }).runAt).toBeGreaterThanOrEqual(before);
      signals.length = 0;
      await waitFor(async () => {
        await insert(other, { runAt: 7 });
        return signals.length > 0;
      }, 10_000, 100);
      expect(signals[0]).toEqual({ kind: 'due', runAt: 7 });
    } finally {
      await store.close();
      await other.close();
    }
  });
});
