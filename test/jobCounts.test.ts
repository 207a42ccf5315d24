import type Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROMOTE_BATCH, PROMOTE_INTERVAL_MS, type JobRepository } from '../src/db/jobRepository.js';
import { jobInState, newJob, testDb } from './support/db.js';

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

function expectCountsKept(db: Database.Database, repo: JobRepository): void {
  expect({ byStatus: repo.countByStatus(), live: repo.liveCount(), imageCounts: repo.imageCounts() }).toEqual(countedThrough(db));
}

const rowStatus = (db: Database.Database, id: number): string => db.prepare(`SELECT status FROM jobs WHERE id = ?`).pluck().get(id) as string;

describe('job counts', () => {
  it('follow every transition of the repository, in the transaction that makes it', () => {
    const { db, repo } = testDb();
    expectCountsKept(db, repo);
    const due = repo.insertJob(newJob({ runAt: 10, images: images(2) }), 10).job;
    const later = repo.insertJob(newJob({ runAt: 1_000, images: images(3) }), 10).job;
    repo.insertJobs([newJob({ runAt: 10, images: images(1) }), newJob({ runAt: 500, images: images(4) })], 10);
    expectCountsKept(db, repo);

    const claimed = repo.claimDue('me', 20, LEASE, 5);
    expect(claimed.map((job) => job.id)).toEqual([due.id, due.id + 2]);
    expectCountsKept(db, repo);
    expect(repo.failAttempt({ jobId: due.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 5_000, 30)).toBe('retrying');
    expect(rowStatus(db, due.id)).toBe('scheduled');
    expectCountsKept(db, repo);

    expect(repo.runNow(due.id, 40)?.status).toBe('queued');
    expect(rowStatus(db, due.id)).toBe('queued');
    const { completed, claimed: next } = repo.completeAndClaimDue([{ jobId: due.id + 2, owner: 'me', attempt: 1 }], 50, 'me', LEASE, 5);
    expect(completed).toEqual([true]);
    expect(next.map((job) => job.id)).toEqual([due.id]);
    expectCountsKept(db, repo);

    expect(repo.cancelJob(later.id, 70)).toMatchObject({ cancelled: true, job: { status: 'cancelled' } });
    const running = repo.claimDue('me', 600, LEASE, 5);
    expect(running).toHaveLength(1); // the job due at 500, promoted by this claim
    expectCountsKept(db, repo);
    expect(repo.returnAttempt({ jobId: running[0]!.id, owner: 'me', attempt: 1 }, 610)).toBe(true);
    repo.claimDue('other', 620, 100, 5);
    expect(repo.requeueLost(10_000)).toBe(1);
    expectCountsKept(db, repo);
    const [last] = repo.claimDue('me', 10_000, LEASE, 1);
    expect(repo.failAttempt({ jobId: last!.id, owner: 'me', attempt: last!.attempts }, { code: 'image_corrupt', message: 'bad' }, null, 10_001)).toBe('failed');
    expectCountsKept(db, repo);

    // A write behind the repository's back (an operator's sqlite3) is counted again by recountJobs, which a start runs.
    db.prepare(`DELETE FROM jobs WHERE id = ?`).run(later.id);
    db.prepare(`UPDATE jobs SET status = 'cancelled', finished_at = 1 WHERE id = ?`).run(due.id + 2);
    expect(repo.countByStatus()).not.toEqual(countedThrough(db).byStatus);
    repo.recountJobs();
    expectCountsKept(db, repo);
    jobInState(db, repo, 'running');
    expectCountsKept(db, repo);
    expect(repo.pruneTerminal(Number.MAX_SAFE_INTEGER, 0).length).toBeGreaterThan(0);
    expectCountsKept(db, repo);
  });

  it('stay untouched by a write that is rolled back', () => {
    const { db, repo } = testDb();
    repo.insertJob(newJob({ idempotencyKey: 'k' }), 1);
    const before = repo.countByStatus();
    // One transaction of two inserts whose second repeats an idempotency key: the unique index refuses it and both roll back.
    expect(() =>
      db.transaction(() => {
        db.prepare(`INSERT INTO jobs (status, max_attempts, options, destination, run_at, created_at, updated_at) VALUES ('queued', 1, '{}', '{}', 0, 0, 0)`).run();
        db.prepare(`INSERT INTO jobs (status, max_attempts, options, destination, idempotency_key, run_at, created_at, updated_at) VALUES ('queued', 1, '{}', '{}', 'k', 0, 0, 0)`).run();
      })(),
    ).toThrow(/UNIQUE/);
    expect(repo.countByStatus()).toEqual(before);
    expectCountsKept(db, repo);
  });
});

describe('jobs waiting for a later runAt', () => {
  it('are queued to clients and scheduled in their row, outside the claim, until their runAt', () => {
    const { db, repo } = testDb();
    const { job } = repo.insertJob(newJob({ runAt: 1_000 }), 10);
    expect(job.status).toBe('queued');
    expect(rowStatus(db, job.id)).toBe('scheduled');
    expect(repo.getJob(job.id)?.status).toBe('queued');
    expect(repo.listJobs({ limit: 10, status: 'queued' }).map((listed) => listed.id)).toEqual([job.id]);
    expect(repo.claimDue('me', 999, LEASE, 5)).toEqual([]);
    expect(repo.nextRunAt()).toBe(1_000);
    expect(repo.claimDue('me', 1_000, LEASE, 5).map((claimed) => claimed.id)).toEqual([job.id]);
    expect(repo.nextRunAt()).toBeNull();
  });

  it('are promoted at most PROMOTE_BATCH per claim, oldest first, and the scheduler is told to look again at once', () => {
    const { db, repo } = testDb();
    const total = PROMOTE_BATCH + 200;
    repo.insertJobs(Array.from({ length: total }, (_, i) => newJob({ runAt: 100 + i })), 1);
    const [first] = repo.claimDue('me', 10_000, LEASE, 1);
    expect(first?.runAt).toBe(100);
    const rows = db.prepare(`SELECT status, count(*) AS n, min(run_at) AS earliest FROM jobs GROUP BY status ORDER BY status`).all();
    expect(rows).toEqual([
      { status: 'queued', n: PROMOTE_BATCH - 1, earliest: 101 },
      { status: 'running', n: 1, earliest: 100 },
      { status: 'scheduled', n: 200, earliest: 100 + PROMOTE_BATCH },
    ]);
    // A queued job is waiting: the scheduler must look again now, not at the scheduled ones' time.
    expect(repo.nextRunAt()).toBeLessThanOrEqual(10_000);
    // With queued work to claim, the next promotion comes PROMOTE_INTERVAL_MS later: one per interval under load, not one per claim.
    repo.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS - 1, LEASE, 1);
    expect(rowStatus(db, total)).toBe('scheduled');
    repo.claimDue('me', 10_000 + PROMOTE_INTERVAL_MS, LEASE, 1);
    expect(rowStatus(db, total)).toBe('queued');
    expectCountsKept(db, repo);
  });

  it('are promoted by a claim that finds fewer queued jobs than it asks for, however recent the last promotion', () => {
    const { repo } = testDb();
    repo.insertJob(newJob({ runAt: 5 }), 1);
    expect(repo.claimDue('me', 5, LEASE, 5)).toHaveLength(1);
    const { job } = repo.insertJob(newJob({ runAt: 6 }), 1);
    expect(repo.claimDue('me', 6, LEASE, 5).map((claimed) => claimed.id)).toEqual([job.id]);
  });

  it('a retry due at once is queued, a later one scheduled; runNow and cancel take either', () => {
    const { db, repo } = testDb();
    const a = repo.insertJob(newJob(), 1).job;
    const b = repo.insertJob(newJob(), 1).job;
    repo.claimDue('me', 10, LEASE, 2);
    repo.failAttempt({ jobId: a.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm' }, 10, 10);
    repo.failAttempt({ jobId: b.id, owner: 'me', attempt: 1 }, { code: 'x', message: 'm' }, 50_000, 10);
    expect([rowStatus(db, a.id), rowStatus(db, b.id)]).toEqual(['queued', 'scheduled']);
    expect(repo.cancelJob(b.id, 20)).toMatchObject({ cancelled: true, previous: null });
    expect(repo.runNow(b.id, 30)).toBeNull(); // ended
    expect(repo.runNow(a.id, 30)).toMatchObject({ status: 'queued', runAt: 30 });
  });
});

describe('liveKeysAmong', () => {
  it('names the keys a waiting or running job owns, and no others', () => {
    const { db, repo } = testDb();
    repo.insertJob(newJob({ inputKey: 'due' }), 1);
    repo.insertJob(newJob({ inputKey: 'later', runAt: 1_000 }), 1);
    jobInState(db, repo, 'running', { job: { inputKey: 'running' } });
    jobInState(db, repo, 'succeeded', { job: { inputKey: 'done' } });
    expect(repo.liveKeysAmong(['due', 'later', 'running', 'done', 'unknown'])).toEqual(new Set(['due', 'later', 'running']));
    expect(repo.liveKeysAmong([])).toEqual(new Set());
  });
});
