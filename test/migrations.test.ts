import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { describe, expect, it } from 'vitest';
import { migrationsFolder, openDatabase } from '../src/db/sqlite/open.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import { insertJob, newJob, tempDir } from './support/db.js';

const LEASE = 30_000;

/** A migrations folder holding only the first `count` migrations of ours: a database as an earlier release left it. */
function firstMigrations(dir: string, count: number): string {
  const folder = path.join(dir, `migrations-${count}`);
  fs.mkdirSync(path.join(folder, 'meta'), { recursive: true });
  const journal = JSON.parse(fs.readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const entries = journal.entries.slice(0, count);
  for (const entry of entries) fs.copyFileSync(path.join(migrationsFolder, `${entry.tag}.sql`), path.join(folder, `${entry.tag}.sql`));
  fs.writeFileSync(path.join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  return folder;
}

const count = (db: Database.Database, table: string): number => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

/** A database as the release with the first `migrations` migrations left it, opened the way that release opened it. */
function earlierRelease(dir: string, migrations: number): { file: string; db: Database.Database } {
  const file = path.join(dir, 'jobs.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  migrate(drizzle(db), { migrationsFolder: firstMigrations(dir, migrations) });
  return { file, db };
}

interface OldJob {
  status: string;
  runAt: number;
  images?: number;
  attempts?: number;
  finishedAt?: number | null;
}

/** Writes a job and its images the way the releases before 0003 did (their columns, their SQL). */
function insertOldJob(db: Database.Database, job: OldJob): number {
  const running = job.status === 'running';
  const { lastInsertRowid } = db
    .prepare(
      `INSERT INTO jobs (status, priority, attempts, max_attempts, options, destination, input_key, run_at, lease_owner, lease_expires_at,
                         created_at, updated_at, started_at, finished_at)
       VALUES (?, 0, ?, 3, '{}', '{"type":"local"}', ?, ?, ?, ?, 1, 1, ?, ?)`,
    )
    .run(job.status, job.attempts ?? 0, `key-${job.runAt}`, job.runAt, running ? 'elsewhere:1:x' : null, running ? 9e15 : null, running ? 1 : null, job.finishedAt ?? null);
  const id = Number(lastInsertRowid);
  for (let index = 0; index < (job.images ?? 1); index++) {
    db.prepare(`INSERT INTO job_images (job_id, idx, input_format, width, height, input_bytes) VALUES (?, ?, 'png', 1, 1, 10)`).run(id, index);
  }
  db.prepare(`INSERT INTO job_events (job_id, attempt, kind, at) VALUES (?, 1, 'started', 1)`).run(id);
  return id;
}

describe('migrations', () => {
  it('upgrade a database made by the first release, keeping every row, the links between them and the id sequence', async () => {
    const dir = tempDir();
    const { file, db: old } = earlierRelease(dir, 1);
    expect(old.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'jobs'`).pluck().get()).toContain(`status IN ('queued'`);
    const ids = [1, 2, 3, 4].map(() => insertOldJob(old, { status: 'queued', runAt: 1 }));
    old.prepare(`UPDATE jobs SET status = 'succeeded', finished_at = 3 WHERE id = ?`).run(ids[0]);
    old.prepare('DELETE FROM jobs WHERE id = ?').run(ids[3]); // the newest job is gone: the sequence is ahead of the ids
    old.close();

    const db = openDatabase(file, { synchronous: 'NORMAL' });
    expect(db.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'jobs'`).pluck().get()).toContain(`status = 'queued' OR status = 'running'`);
    expect([count(db, 'jobs'), count(db, 'job_images'), count(db, 'job_events')]).toEqual([3, 3, 3]);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('foreign_key_check')).toEqual([]);
    const upgraded = createSqliteStore(db);
    expect(await upgraded.getJob(ids[0]!)).toMatchObject({ status: 'succeeded', finishedAt: 3 });
    expect(db.prepare('SELECT request_fingerprint FROM jobs WHERE id = ?').pluck().get(ids[0])).toBeNull();
    const images = [{ originalName: 'a.png', inputFormat: 'png', width: 1, height: 1, pages: 1, inputBytes: 10 }];
    expect((await insertJob(upgraded, newJob({ images }), 4)).job.id).toBe(5); // ids never repeat
    db.prepare('DELETE FROM jobs WHERE id = ?').run(ids[0]);
    expect([count(db, 'jobs'), count(db, 'job_images'), count(db, 'job_events')]).toEqual([3, 3, 2]); // cascades still hold
    expect(() => db.prepare(`UPDATE jobs SET status = 'lost' WHERE id = 2`).run()).toThrow(/CHECK constraint failed: jobs_status_check/);
    await upgraded.close();
  });

  it('upgrade a queue from the release before job_counts: future jobs become scheduled, counts and image counts are backfilled', async () => {
    const dir = tempDir();
    const { file, db: old } = earlierRelease(dir, 3);
    const now = Date.now();
    const due = insertOldJob(old, { status: 'queued', runAt: now - 60_000, images: 2 });
    const later = insertOldJob(old, { status: 'queued', runAt: now + 3_600_000, images: 3 });
    const running = insertOldJob(old, { status: 'running', runAt: now - 60_000, attempts: 1 });
    const done = insertOldJob(old, { status: 'succeeded', runAt: now - 60_000, attempts: 1, finishedAt: now - 1_000, images: 4 });
    insertOldJob(old, { status: 'failed', runAt: now - 60_000, attempts: 3, finishedAt: now - 1_000 });
    old.close();

    const db = openDatabase(file, { synchronous: 'NORMAL' });
    const rows = db.prepare(`SELECT id, status, image_count FROM jobs ORDER BY id`).all();
    expect(rows).toEqual([
      { id: due, status: 'queued', image_count: 2 },
      { id: later, status: 'scheduled', image_count: 3 },
      { id: running, status: 'running', image_count: 1 },
      { id: done, status: 'succeeded', image_count: 4 },
      { id: done + 1, status: 'failed', image_count: 1 },
    ]);
    const store = createSqliteStore(db);
    expect((await store.countByStatus())).toEqual({ queued: 2, running: 1, succeeded: 1, failed: 1, cancelled: 0 });
    expect((await store.liveCount())).toBe(3);
    expect((await store.imageCounts())).toEqual({ pending: 2 + 3 + 1, completed: 4 });
    expect((await store.getJob(later))?.status).toBe('queued'); // what clients see

    // The claim takes the due job only; the later one waits for its run_at, then is promoted and claimed.
    expect((await store.claimDue('me', now, LEASE, 5)).map((job) => job.id)).toEqual([due]);
    expect((await store.nextRunAt())).toBe(now + 3_600_000);
    expect((await store.claimDue('me', now + 3_600_000, LEASE, 5)).map((job) => job.id)).toEqual([later]);
    // The backfilled counts move with every write from here on.
    expect((await store.countByStatus())).toEqual({ queued: 0, running: 3, succeeded: 1, failed: 1, cancelled: 0 });
    expect((await store.imageCounts())).toEqual({ pending: 6, completed: 4 });
    expect((await store.pruneTerminal(now, 0))).toHaveLength(2);
    expect((await store.countByStatus())).toEqual({ queued: 0, running: 3, succeeded: 0, failed: 0, cancelled: 0 });
    expect((await store.imageCounts())).toEqual({ pending: 6, completed: 0 });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('foreign_key_check')).toEqual([]);
    await store.close();
  });
});
