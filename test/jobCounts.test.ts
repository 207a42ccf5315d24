import type Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROMOTE_BATCH, PROMOTE_INTERVAL_MS } from '../src/db/limits.js';
import type { JobStore } from '../src/jobs/store.js';
import { insertJob, jobInState, newJob, testDb } from './support/db.js';

const LEASE = 30_000;
const image = { originalName: null, inputFormat: 'png', width: 1, height: 1, pages: 1, inputBytes: 1 };
const images = (n: number) => Array.from({ length: n }, () => image);

/** The counts read row by row, the way they were before job_counts: what the kept counters must always equal. */
function countedThrough(db: Database.Database) {
  const byStatus = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  const rows = db.prepare(`SELECT status, count(*) AS n FROM jobs GROUP BY status`).all() as { status: string; n: number }[];
  for (const { status, n } of rows) byStatus[(status === 'scheduled' ? 'queued' : status) as keyof typeof byStatus] += n;
  const imageCounts = db
    .prepare(
      `SELECT coalesce(sum(j.status IN ('scheduled', 'queued', 'running')), 0) AS pending, coalesce(sum(j.status = 'succeeded'), 0) AS completed
         FROM job_images i JOIN jobs j ON j.id = i.job_id`,
    )
    .get();
  return { byStatus, live: byStatus.queued + byStatus.running, imageCounts };
}

async function expectCountsKept(db: Database.Database, store: JobStore): Promise<void> {
  expect({ byStatus: (await store.countByStatus()), live: (await store.liveCount()), imageCounts: (await store.imageCounts()) }).toEqual(countedThrough(db));
}

const rowStatus = (db: Database.Database, id: number): string => db.prepare(`SELECT status FROM jobs WHERE id = ?`).pluck().get(id) as string;

describe('job counts', () => {
  it('follow every transition of the repository, in the transaction that makes it', async () => {
    const { db, store } = testDb();
    await expectCountsKept(db, store);
    const due = (await insertJob(store, newJob({ runAt: 10, images: images(2) }), 10)).job;
    const later = (await insertJob(store, newJob({ runAt: 1_000, images: images(3) }), 10)).job;
    await store.insertJobs([newJob({ runAt: 10, images: images(1) }), newJob({ runAt: 500, images: images(4) })], 10);
    await expectCountsKept(db, store);

    const claimed = (await store.claimDue('me', 20, LEASE, 5));
    expect(claimed.map((job) => job.id)).toEqual([due.id, due.id + 2]);
    await expectCountsKept(db, store);
    expect((await store.failAttempt({ jobId: due.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 5_000, 30))).toBe('retrying');
    expect(rowStatus(db, due.id)).toBe('scheduled');
    await expectCountsKept(db, store);

    expect((await store.runNow(due.id, 40))?.status).toBe('queued');
    expect(rowStatus(db, due.id)).toBe('queued');
    const { completed, claimed: next } = (await store.completeAndClaimDue([{ jobId: due.id + 2, owner: 'me', attempt: 1 }], 50, 'me', LEASE, 5));
    expect(completed).toEqual([true]);
    expect(next.map((job) => job.id)).toEqual([due.id]);
    await expectCountsKept(db, store);

    expect((await store.cancelJob(later.id, 70))).toMatchObject({ cancelled: true, job: { status: 'cancelled' } });
    const running = (await store.claimDue('me', 600, LEASE, 5));
    expect(running).toHaveLength(1); // the job due at 500, promoted by this claim
    await expectCountsKept(db, store);
    expect((await store.returnAttempt({ jobId: running[0]!.id, owner: 'me', attempt: 1 }, 610))).toBe(true);
    await store.claimDue('other', 620, 100, 5);
    expect((await store.requeueLost(10_000))).toBe(1);
    await expectCountsKept(db, store);
    const [last] = (await store.claimDue('me', 10_000, LEASE, 1));
    expect((await store.failAttempt({ jobId: last!.id, owner: 'me', attempt: last!.attempts }, { code: 'image_corrupt', message: 'bad' }, null, 10_001))).toBe('failed');
    await expectCountsKept(db, store);

    // A write behind the repository's back (an operator's sqlite3) is counted again by recountJobs, which a start runs.
    db.prepare(`DELETE FROM jobs WHERE id = ?`).run(later.id);
    db.prepare(`UPDATE jobs SET status = 'cancelled', finished_at = 1 WHERE id = ?`).run(due.id + 2);
    expect((await store.countByStatus())).not.toEqual(countedThrough(db).byStatus);
    await store.recountJobs();
    await expectCountsKept(db, store);
    await jobInState(db, store, 'running');
    await expectCountsKept(db, store);
    expect((await store.pruneTerminal(Number.MAX_SAFE_INTEGER, 0)).length).toBeGreaterThan(0);
    await expectCountsKept(db, store);
  });

  it('stay untouched by a write that is rolled back', async () => {
    const { db, store } = testDb();
    await insertJob(store, newJob({ idempotencyKey: 'k' }), 1);
    const before = (await store.countByStatus());
    // One transaction of two inserts whose second repeats an idempotency key: the unique index refuses it and both roll back.
    expect(() =>
      db.transaction(() => {
        db.prepare(`INSERT INTO jobs (status, max_attempts, options, destination, run_at, created_at, updated_at) VALUES ('queued', 1, '{}', '{}', 0, 0, 0)`).run();
        db.prepare(`INSERT INTO jobs (status, max_attempts, options, destination, idempotency_key, run_at, created_at, updated_at) VALUES ('queued', 1, '{}', '{}', 'k', 0, 0, 0)`).run();
      })(),
    ).toThrow(/UNIQUE/);
    expect((await store.countByStatus())).toEqual(before);
    await expectCountsKept(db, store);
  });
});

describe('jobs waiting for a later runAt', () => {
  it('are queued to clients and scheduled in their row, outside the claim, until their runAt', async () => {
    const { db, store } = testDb();
    const { job } = (await insertJob(store, newJob({ runAt: 1_000 }), 10));
    expect(job.status).toBe('queued');
    expect(rowStatus(db, job.id)).toBe('scheduled');
    expect((await store.getJob(job.id))?.status).toBe('queued');
    expect((await store.listJobs({ limit: 10, status: 'queued' })).map((listed) => listed.id)).toEqual([job.id]);
    expect((await store.claimDue('me', 999, LEASE, 5))).toEqual([]);
    expect((await store.nextRunAt())).toBe(1_000);
    expect((await store.claimDue('me', 1_000, LEASE, 5)).map((claimed) => claimed.id)).toEqual([job.id]);
    expect((await store.nextRunAt())).toBeNull();
  });

  it('are promoted at most PROMOTE_BATCH per claim, oldest first, and the scheduler is told to look again at once', async () => {
    const { db, store } = testDb();
    const total = PROMOTE_BATCH + 200;
    await store.insertJobs(Array.from({ length: total }, (_, i) => newJob({ runAt: 100 + i })), 1);
    const [first] = (await store.claimDue('me', 10_000, LEASE, 1));
    expect(first?.runAt).toBe(100);
    const rows = db.prepare(`SELECT status, count(*) AS n, min(run_at) AS earliest FROM jobs GROUP BY status ORDER BY status`).all();
    expect(rows).toEqual([
      { status: 'queued', n: PROMOTE_BATCH - 1, earliest: 101 },
      { status: 'running', n: 1, earliest: 100 },
      { status: 'scheduled', n: 200, earliest: 100 + PROMOTE_BATCH },
    ]);
    // A queued job is waiting: the scheduler must look again now, not at the scheduled ones' time.
    expect((await store.nextRunAt())).toBeLessThanOrEqual(10_000);
    // With queued work to claim, the next promotion comes PROMOTE_INTERVAL_MS later: one per interval under load, not one per claim.
    await store.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS - 1, LEASE, 1);
    expect(rowStatus(db, total)).toBe('scheduled');
    await store.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS, LEASE, 1);
    expect(rowStatus(db, total)).toBe('queued');
    await expectCountsKept(db, store);
  });

  it('are promoted by a claim that finds fewer queued jobs than it asks for, however recent the last promotion', async () => {
    const { store } = testDb();
    await insertJob(store, newJob({ runAt: 5 }), 1);
    expect((await store.claimDue('me', 5, LEASE, 5))).toHaveLength(1);
    const { job } = (await insertJob(store, newJob({ runAt: 6 }), 1));
    expect((await store.claimDue('me', 6, LEASE, 5)).map((claimed) => claimed.id)).toEqual([job.id]);
  });

  it('a retry due at once is queued, a later one scheduled; runNow and cancel take either', async () => {
    const { db, store } = testDb();
    const a = (await insertJob(store, newJob(), 1)).job;
    const b = (await insertJob(store, newJob(), 1)).job;
    await store.claimDue('me', 10, LEASE, 2);
    await store.failAttempt({ jobId: a.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm' }, 10, 10);
    await store.failAttempt({ jobId: b.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm' }, 50_000, 10);
    expect([rowStatus(db, a.id), rowStatus(db, b.id)]).toEqual(['queued', 'scheduled']);
    expect((await store.cancelJob(b.id, 20))).toMatchObject({ cancelled: true, previous: null });
    expect((await store.runNow(b.id, 30))).toBeNull(); // ended
    expect((await store.runNow(a.id, 30))).toMatchObject({ status: 'queued', runAt: 30 });
  });
});

describe('liveKeysAmong', () => {
  it('names the keys a waiting or running job owns, and no others', async () => {
    const { db, store } = testDb();
    await insertJob(store, newJob({ inputKey: 'due' }), 1);
    await insertJob(store, newJob({ inputKey: 'later', runAt: 1_000 }), 1);
    await jobInState(db, store, 'running', { job: { inputKey: 'running' } });
    await jobInState(db, store, 'succeeded', { job: { inputKey: 'done' } });
    expect((await store.liveKeysAmong(['due', 'later', 'running', 'done', 'unknown']))).toEqual(new Set(['due', 'later', 'running']));
    expect((await store.liveKeysAmong([]))).toEqual(new Set());
  });
});
