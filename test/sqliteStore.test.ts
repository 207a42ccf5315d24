import fs from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/sqlite/open.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import type { JobStore } from '../src/jobs/store.js';
import { insertJob, newJob, testDb } from './support/db.js';
import { openFilesUnder } from './support/descriptors.js';

/**
 * What is SQLite's own in the SQLite store: its file's settings and
 * constraints, its claim's column mapping, two connections on one file, its
 * query plans, counts kept through a rolled-back write, and the WAL fsync
 * that makes a commit durable. The contract both stores keep is in
 * test/jobStore.test.ts, which runs on SQLite too.
 */

const LEASE = 30_000;

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

describe('claims on SQLite', () => {
  it('returns each claimed job as it now stands in the database', async () => {
    const { store } = testDb();
    const { job } = (await insertJob(store, newJob({ options: { format: 'avif', quality: 50 }, inputKey: 'k1', idempotencyKey: 'i1' }), 1));
    await store.claimDue('me', 10, LEASE, 1);
    await store.failAttempt({ jobId: job.id, owner: 'me', attempt: 1 }, { code: 'network', message: 'reset' }, 20, 10);
    const [claimed] = (await store.claimDue('me', 30, LEASE, 1));
    expect(claimed).toEqual((await store.getJob(job.id)));
    expect(claimed).toMatchObject({ attempts: 2, options: { format: 'avif', quality: 50 }, lastError: { code: 'network' } });
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
