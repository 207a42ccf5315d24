import fs from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/sqlite/open.js';
import { PRUNE_BATCH } from '../src/db/limits.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import { complete, insertJob, jobInState, newJob, testDb } from './support/db.js';
import { openFilesUnder } from './support/descriptors.js';

const LEASE = 30_000;

describe('the jobs database', () => {
  it('opens in WAL mode with foreign keys, a busy timeout and the configured synchronous level', async () => {
    const { file, db } = testDb();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    const full = openDatabase(file, { synchronous: 'FULL' });
    expect(full.pragma('synchronous', { simple: true })).toBe(2);
    full.close();
  });

  it('refuses a status outside the closed list and a running job without a lease', async () => {
    const { db, store } = testDb();
    const { job } = (await insertJob(store, newJob(), 1));
    expect(() => db.prepare(`UPDATE jobs SET status = 'done' WHERE id = ?`).run(job.id)).toThrow(/CHECK constraint failed/);
    expect(() => db.prepare(`UPDATE jobs SET status = 'running' WHERE id = ?`).run(job.id)).toThrow(/CHECK constraint failed/);
  });

  it('never hands out an id twice, even after the newest job is pruned', async () => {
    const { db, store } = testDb();
    const first = (await insertJob(store, newJob(), 1)).job;
    const second = await jobInState(db, store, 'succeeded', { finishedAt: 1 });
    expect((await store.pruneTerminal(10, 0))).toEqual([second.id]);
    const third = (await insertJob(store, newJob(), 2)).job;
    expect(third.id).toBeGreaterThan(second.id);
    expect(third.id).toBeGreaterThan(first.id);
  });
});

describe('insertJob', () => {
  it('stores the job queued with its images in upload order', async () => {
    const { store } = testDb();
    const images = [0, 1, 2].map((i) => ({ originalName: `${i}.png`, inputFormat: 'png', width: 10 + i, height: 5, pages: 1, inputBytes: 100 }));
    const { job, created } = (await insertJob(store, newJob({ images, inputKey: 'k' }), 1_000));
    expect(created).toBe(true);
    expect(job).toMatchObject({ status: 'queued', attempts: 0, createdAt: 1_000, inputKey: 'k' });
    expect((await store.listImages(job.id)).map((image) => [image.index, image.originalName, image.width, image.status])).toEqual([
      [0, '0.png', 10, 'pending'],
      [1, '1.png', 11, 'pending'],
      [2, '2.png', 12, 'pending'],
    ]);
  });

  it('returns the first job for a repeated idempotency key and stores nothing new', async () => {
    const { store } = testDb();
    const first = (await insertJob(store, newJob({ idempotencyKey: 'abc' }), 1));
    const again = (await insertJob(store, newJob({ idempotencyKey: 'abc', priority: 9 }), 2));
    expect(again.created).toBe(false);
    expect(again.job.id).toBe(first.job.id);
    expect(again.job.priority).toBe(0);
    expect((await store.listJobs({ limit: 10 }))).toHaveLength(1);
  });

  it('stores several jobs in one transaction, a key repeated within the batch answering with the first', async () => {
    const { store } = testDb();
    const results = (await store.insertJobs([newJob({ priority: 1 }), newJob({ idempotencyKey: 'k' }), newJob({ idempotencyKey: 'k', priority: 7 })], 5));
    expect(results.map((result) => result.created)).toEqual([true, true, false]);
    expect(results[2]?.job.id).toBe(results[1]?.job.id);
    expect((await store.listJobs({ limit: 10 })).map((job) => job.priority)).toEqual([0, 1]);
  });
});

describe('claimDue', () => {
  it('claims due jobs by priority, then oldest runAt, then id, and only those due', async () => {
    const { store } = testDb();
    const low = (await insertJob(store, newJob({ priority: 0, runAt: 10 }), 1)).job;
    const highLate = (await insertJob(store, newJob({ priority: 5, runAt: 20 }), 1)).job;
    const highEarly = (await insertJob(store, newJob({ priority: 5, runAt: 15 }), 1)).job;
    const future = (await insertJob(store, newJob({ priority: 9, runAt: 1_000 }), 1)).job;
    const claimed = (await store.claimDue('me', 100, LEASE, 10));
    expect(claimed.map((job) => job.id)).toEqual([highEarly.id, highLate.id, low.id]);
    expect(claimed.every((job) => job.status === 'running' && job.attempts === 1 && job.leaseOwner === 'me')).toBe(true);
    expect(claimed[0]?.leaseExpiresAt).toBe(100 + LEASE);
    expect((await store.getJob(future.id))?.status).toBe('queued');
    expect((await store.nextRunAt())).toBe(1_000);
  });

  it('claims no more than the limit and records a started event per claim', async () => {
    const { store } = testDb();
    for (let i = 0; i < 5; i++) (await insertJob(store, newJob(), 1));
    const claimed = (await store.claimDue('me', 10, LEASE, 2));
    expect(claimed).toHaveLength(2);
    expect((await store.countByStatus())).toMatchObject({ queued: 3, running: 2 });
    const events = (await store.listEvents(claimed[0]!.id));
    expect(events.map((event) => [event.kind, event.attempt, event.leaseOwner])).toEqual([['started', 1, 'me']]);
  });

  it('returns each claimed job as it now stands in the database', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob({ options: { format: 'avif', quality: 50 }, inputKey: 'k1', idempotencyKey: 'i1' }), 1));
    await store.claimDue('me', 10, LEASE, 1);
    await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 20, 10);
    const [claimed] = (await store.claimDue('me', 30, LEASE, 1));
    expect(claimed).toEqual((await store.getJob(job.id)));
    expect(claimed).toMatchObject({ attempts: 2, options: { format: 'avif', quality: 50 }, lastError: { code: 'network' } });
  });

  it('completes attempts and claims due jobs in one transaction', async () => {
    const { store } = testDb();
    const first = (await insertJob(store, newJob({ runAt: 1 }), 1)).job;
    const second = (await insertJob(store, newJob({ runAt: 2 }), 1)).job;
    await insertJob(store, newJob({ runAt: 1_000 }), 1);
    const [claimed] = (await store.claimDue('me', 10, LEASE, 1));
    const stale = { jobId: first.id, owner: 'me', attempt: 7 };
    const result = (await store.completeAndClaimDue([{ jobId: first.id, owner: 'me', attempt: claimed!.attempts }, stale], 20, 'me', LEASE, 5));
    expect(result.completed).toEqual([true, false]);
    expect(result.claimed.map((job) => job.id)).toEqual([second.id]);
    expect((await store.getJob(first.id))).toMatchObject({ status: 'succeeded', finishedAt: 20 });
    expect((await store.listEvents(first.id)).map((event) => event.kind)).toEqual(['started', 'succeeded']);
    expect((await store.listEvents(second.id)).map((event) => event.kind)).toEqual(['started']);
    expect((await store.completeAndClaimDue([], 30, 'me', LEASE, 0))).toEqual({ completed: [], claimed: [] });
  });

  it('never gives one job to two connections claiming at once on the same file', async () => {
    const { file, store } = testDb();
    for (let i = 0; i < 200; i++) await insertJob(store, newJob(), 1);
    const other = new Database(file);
    other.pragma('busy_timeout = 5000');
    const otherStore = createSqliteStore(other);
    const seen = new Map<number, string>();
    for (let round = 0; round < 50; round++) {
      for (const [owner, r] of [['a', store], ['b', otherStore]] as const) {
        for (const job of await r.claimDue(owner, 10, LEASE, 3)) {
          expect(seen.has(job.id)).toBe(false);
          seen.set(job.id, owner);
        }
      }
    }
    other.close();
    expect(seen.size).toBe(200);
    expect(new Set(seen.values())).toEqual(new Set(['a', 'b']));
  });
});

describe('attempt writes are fenced by owner and attempt', () => {
  it('ignores a late attempt after its job was requeued and claimed again', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob(), 1));
    const [first] = (await store.claimDue('old', 10, 100, 1));
    // The old owner's lease runs out; the job comes back and someone else takes it.
    expect((await store.requeueLost(10 + 101))).toBe(1);
    const [second] = (await store.claimDue('new', 200, LEASE, 1));
    expect(second?.attempts).toBe(2);
    const late = { jobId: job.id, owner: 'old', attempt: first!.attempts };
    expect((await store.heartbeat(late, 300, LEASE))).toBe(false);
    expect((await complete(store, late, 300))).toBe(false);
    expect((await store.failAttempt(late, { code: 'x', message: 'late' }, null, 300))).toBeNull();
    expect((await store.returnAttempt(late, 300))).toBe(false);
    expect((await store.recordDelivered(late, 0, { outputFormat: 'webp', outputWidth: 1, outputHeight: 1, outputBytes: 1, scaledToFit: false, location: 'x' }, 300))).toBe(false);
    expect((await store.getJob(job.id))).toMatchObject({ status: 'running', leaseOwner: 'new', attempts: 2 });
    const current = { jobId: job.id, owner: 'new', attempt: 2 };
    expect((await complete(store, current, 400))).toBe(true);
    expect((await store.getJob(job.id))).toMatchObject({ status: 'succeeded', finishedAt: 400, leaseOwner: null });
  });

  it('ignores the same owner\'s earlier attempt number', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob(), 1));
    await store.claimDue('me', 10, LEASE, 1);
    await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'e', message: 'm' }, 20, 10);
    await store.claimDue('me', 20, LEASE, 1);
    expect((await complete(store, { jobId: job.id, owner: 'me', attempt: 1 }, 30))).toBe(false);
    expect((await store.getJob(job.id))?.status).toBe('running');
  });
});

describe('ending attempts', () => {
  it('retries at the given time, keeping the error, or fails for good', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob(), 1));
    await store.claimDue('me', 10, LEASE, 1);
    expect((await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 5_000, 10))).toBe('retrying');
    expect((await store.getJob(job.id))).toMatchObject({ status: 'queued', runAt: 5_000, attempts: 1, lastError: { code: 'network', message: 'reset' } });
    expect((await store.claimDue('me', 4_999, LEASE, 1))).toHaveLength(0);
    await store.claimDue('me', 5_000, LEASE, 1);
    expect((await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 2 }, { code: 'image_corrupt', message: 'bad' }, null, 6_000))).toBe('failed');
    expect((await store.getJob(job.id))).toMatchObject({ status: 'failed', finishedAt: 6_000, lastError: { code: 'image_corrupt' } });
    expect((await store.listEvents(job.id)).map((event) => [event.kind, event.attempt, event.error?.code ?? null])).toEqual([
      ['started', 1, null],
      ['retrying', 1, 'network'],
      ['started', 2, null],
      ['failed', 2, 'image_corrupt'],
    ]);
  });

  it('returns an interrupted attempt without counting it, at its place in the queue', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob({ runAt: 5 }), 1));
    await store.claimDue('me', 10, LEASE, 1);
    const later = (await insertJob(store, newJob({ runAt: 15 }), 15)).job;
    expect((await store.returnAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, 20))).toBe(true);
    expect((await store.getJob(job.id))).toMatchObject({ status: 'queued', attempts: 0, runAt: 5, leaseOwner: null, updatedAt: 20 });
    // Submitted after it was claimed, the other job still runs after it.
    expect((await store.claimDue('me', 30, LEASE, 2)).map((claimed) => claimed.id)).toEqual([job.id, later.id]);
  });

  it('cancels queued and running jobs but not ended ones', async () => {
    const { db, store } = testDb();
    const queued = (await insertJob(store, newJob(), 1)).job;
    const running = await jobInState(db, store, 'running', { leaseOwner: 'me' });
    const done = await jobInState(db, store, 'succeeded');
    expect((await store.cancelJob(queued.id, 5))).toMatchObject({ cancelled: true, previous: null, job: { status: 'cancelled', finishedAt: 5 } });
    expect((await store.cancelJob(running.id, 5))).toMatchObject({ cancelled: true, previous: { jobId: running.id, owner: 'me', attempt: 1 } });
    expect((await store.cancelJob(done.id, 5))).toMatchObject({ cancelled: false, job: { status: 'succeeded' } });
    expect((await store.cancelJob(999, 5))).toBeNull();
  });
});

describe('requeueLost', () => {
  it('requeues jobs whose lease expired or whose owner is dead, and fails those out of attempts', async () => {
    const { db, store } = testDb();
    const expired = await jobInState(db, store, 'running', { leaseOwner: 'a', leaseExpiresAt: 50 });
    const alive = await jobInState(db, store, 'running', { leaseOwner: 'b', leaseExpiresAt: 500 });
    const dead = await jobInState(db, store, 'running', { leaseOwner: 'c', leaseExpiresAt: 500 });
    const exhausted = await jobInState(db, store, 'running', { leaseOwner: 'c', leaseExpiresAt: 500, attempts: 3 });
    expect((await store.requeueLost(100, ['c']))).toBe(3);
    expect((await store.getJob(expired.id))).toMatchObject({ status: 'queued', runAt: 100, attempts: 1, lastError: { code: 'attempt_lost' } });
    expect((await store.getJob(alive.id))?.status).toBe('running');
    expect((await store.getJob(dead.id))?.status).toBe('queued');
    expect((await store.getJob(exhausted.id))).toMatchObject({ status: 'failed', finishedAt: 100 });
  });
});

describe('pruneTerminal', () => {
  it('deletes terminal jobs past the TTL, then all but the newest N, with their images and events', async () => {
    const { db, store } = testDb();
    const old = await jobInState(db, store, 'failed', { finishedAt: 10, job: { images: [{ originalName: null, inputFormat: 'png', width: 1, height: 1, pages: 1, inputBytes: 1 }] } });
    const kept = [];
    for (const at of [100, 200, 300]) kept.push(await jobInState(db, store, 'succeeded', { finishedAt: at }));
    const cancelled = await jobInState(db, store, 'cancelled', { finishedAt: 150 });
    const live = [await jobInState(db, store, 'queued'), await jobInState(db, store, 'running')];
    const removed = (await store.pruneTerminal(50, 2));
    expect(removed.sort()).toEqual([old.id, kept[0]!.id, cancelled.id].sort());
    expect((await store.listImages(old.id))).toEqual([]);
    expect((await store.listEvents(old.id))).toEqual([]);
    for (const job of [...kept.slice(1), ...live]) expect((await store.getJob(job.id))).not.toBeNull();
  });
});

describe('pruneTerminal in batches', () => {
  it('deletes at most PRUNE_BATCH jobs a call, and nothing once none is left to prune', async () => {
    const { db, store } = testDb();
    await store.insertJobs(Array.from({ length: PRUNE_BATCH + 50 }, () => newJob()), 1);
    db.prepare(`UPDATE jobs SET status = 'succeeded', finished_at = 5`).run();
    await store.recountJobs();
    const live = (await insertJob(store, newJob(), 1)).job;
    expect((await store.pruneTerminal(10, 0))).toHaveLength(PRUNE_BATCH);
    expect((await store.pruneTerminal(10, 0))).toHaveLength(50);
    expect((await store.pruneTerminal(10, 0))).toEqual([]);
    expect((await store.listJobs({ limit: 10 })).map((job) => job.id)).toEqual([live.id]);
    expect((await store.countByStatus())).toMatchObject({ queued: 1, succeeded: 0 });
  });
});

describe('listJobs', () => {
  it('lists newest first with a keyset cursor and a status filter', async () => {
    const { db, store } = testDb();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await insertJob(store, newJob(), 1)).job.id);
    const failed = await jobInState(db, store, 'failed');
    const page1 = (await store.listJobs({ limit: 3 }));
    expect(page1.map((job) => job.id)).toEqual([failed.id, ids[4], ids[3]]);
    const page2 = (await store.listJobs({ limit: 3, beforeId: page1[2]!.id }));
    expect(page2.map((job) => job.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect((await store.listJobs({ limit: 10, status: 'failed' })).map((job) => job.id)).toEqual([failed.id]);
  });
});

describe('query plans', () => {
  it('serve the claim, the next due time, idempotency, listing and the counts from indexes, without sorting', async () => {
    const { store } = testDb();
    const plan = (name: Parameters<typeof store.queryPlan>[0]) => store.queryPlan(name).join(' | ');
    expect(plan('claimDue')).toContain('SCAN jobs USING COVERING INDEX jobs_claim_idx');
    expect(plan('promoteDue')).toContain('SEARCH jobs USING COVERING INDEX jobs_scheduled_idx (run_at<?)');
    expect(plan('nextRunAt')).toMatch(/COVERING INDEX jobs_claim_idx.*COVERING INDEX jobs_scheduled_idx/);
    expect(plan('byIdempotencyKey')).toContain('USING INDEX jobs_idempotency_key_idx');
    expect(plan('list')).toContain('USING INTEGER PRIMARY KEY');
    expect(plan('listByStatus')).toContain('USING INTEGER PRIMARY KEY');
    for (const name of ['claimDue', 'promoteDue', 'nextRunAt', 'list', 'listByStatus'] as const) {
      expect(plan(name), name).not.toContain('TEMP B-TREE');
    }
    expect(plan('pruneExpired')).toContain('USING INDEX jobs_finished_idx');
    expect(plan('pruneOverflow')).toContain('USING INDEX jobs_finished_idx');
  });

  it('read counts from job_counts and ask for temp-file owners key by key, never reading the jobs table through', async () => {
    const { store } = testDb();
    const plan = (name: Parameters<typeof store.queryPlan>[0]) => store.queryPlan(name).join(' | ');
    for (const name of ['counts', 'liveCount'] as const) {
      expect(plan(name), name).toMatch(/job_counts/);
      expect(plan(name), name).not.toMatch(/\bjobs\b/);
    }
    expect(plan('liveKeysAmong')).toContain('SEARCH jobs USING INDEX jobs_input_key_idx (input_key=?)');
    expect(plan('liveKeysAmong')).not.toMatch(/SCAN jobs/);
  });

  it('check constraints and partial indexes build no temporary table for each row written', async () => {
    const { db } = testDb();
    // An IN list of more than two constants would open one (OpenEphemeral) per evaluation, i.e. per row.
    const ephemeral = (statement: string) => db.prepare(`EXPLAIN ${statement}`).all().filter((op) => (op as { opcode: string }).opcode === 'OpenEphemeral');
    expect(ephemeral(`INSERT INTO jobs (status, max_attempts, options, destination, run_at, created_at, updated_at) VALUES ('queued', 1, '{}', '{}', 0, 0, 0)`)).toEqual([]);
    expect(ephemeral(`UPDATE jobs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, finished_at = 1 WHERE id = 1`)).toEqual([]);
    expect(ephemeral(`INSERT INTO job_events (job_id, attempt, kind, at) VALUES (1, 1, 'started', 0)`)).toEqual([]);
  });
});

describe('durability of writes', () => {
  it('commits at NORMAL and, with FULL asked for, makes commits durable by an fsync of the WAL a client waits for', async () => {
    const { file } = testDb();
    const full = openDatabase(file, { synchronous: 'FULL' });
    expect(full.pragma('synchronous', { simple: true })).toBe(2);
    const store = createSqliteStore(full);
    expect(full.pragma('synchronous', { simple: true })).toBe(1);
    await insertJob(store, newJob(), 1);
    const wal = `${file}-wal`;
    expect(fs.statSync(wal).size).toBeGreaterThan(0); // the commit is in the WAL, which makeDurable fsyncs
    // Fails (ENOENT) if the WAL were not where makeDurable looks for it.
    await Promise.all([store.makeDurable(), store.makeDurable(), store.makeDurable()]);
    await store.close();
  });

  it('fsyncs the WAL through one descriptor it keeps, which a checkpoint does not replace, until closed', async () => {
    const { file } = testDb();
    const full = openDatabase(file, { synchronous: 'FULL' });
    const store = createSqliteStore(full);
    const wal = `${file}-wal`;
    await insertJob(store, newJob(), 1);
    const sqlites = openFilesUnder(wal); // SQLite's own, one per connection
    await store.makeDurable();
    expect(openFilesUnder(wal)).toEqual([...sqlites, wal]);
    full.pragma('wal_checkpoint(TRUNCATE)');
    await insertJob(store, newJob(), 2);
    await Promise.all([store.makeDurable(), store.makeDurable()]);
    expect(openFilesUnder(wal)).toEqual([...sqlites, wal]); // the same file: none opened anew, none removed
    await store.close(); // its held descriptor and its connection's own both go
    expect(openFilesUnder(wal)).toEqual(sqlites.slice(1));
  });
});
