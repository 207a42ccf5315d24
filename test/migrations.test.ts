import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { describe, expect, it } from 'vitest';
import { createJobRepository } from '../src/db/jobRepository.js';
import { migrationsFolder, openDatabase } from '../src/db/open.js';
import { newJob, tempDir } from './support/db.js';

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

describe('migrations', () => {
  it('upgrade a database made by the first release, keeping every row, the links between them and the id sequence', () => {
    const dir = tempDir();
    const file = path.join(dir, 'jobs.db');
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    old.pragma('foreign_keys = ON');
    migrate(drizzle(old), { migrationsFolder: firstMigrations(dir, 1) });
    expect(old.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'jobs'`).pluck().get()).toContain(`status IN ('queued'`);
    // Rows as the first release wrote them (today's repository writes today's columns).
    const insertJob = old.prepare(
      `INSERT INTO jobs (status, priority, max_attempts, options, destination, run_at, created_at, updated_at)
       VALUES ('queued', 0, 3, '{"format":"webp"}', '{"type":"local"}', 0, 1, 1) RETURNING id`,
    ).pluck();
    const insertImage = old.prepare(`INSERT INTO job_images (job_id, idx, original_name, input_format, width, height, pages, input_bytes) VALUES (?, 0, 'a.png', 'png', 1, 1, 1, 10)`);
    const ids = [1, 2, 3, 4].map(() => {
      const id = insertJob.get() as number;
      insertImage.run(id);
      return id;
    });
    const claimed = { id: ids[0] as number };
    old.prepare(`UPDATE jobs SET status = 'succeeded', attempts = 1, started_at = 2, finished_at = 3, updated_at = 3 WHERE id = ?`).run(claimed.id);
    old.prepare(`INSERT INTO job_events (job_id, attempt, kind, lease_owner, at) VALUES (?, 1, 'started', 'old', 2), (?, 1, 'succeeded', 'old', 3)`).run(claimed.id, claimed.id);
    old.prepare('DELETE FROM jobs WHERE id = ?').run(ids[3]); // the newest job is gone: the sequence is ahead of the ids
    old.close();

    const db = openDatabase(file, { synchronous: 'NORMAL' });
    expect(db.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'jobs'`).pluck().get()).toContain(`status = 'queued' OR status = 'running'`);
    expect([count(db, 'jobs'), count(db, 'job_images'), count(db, 'job_events')]).toEqual([3, 3, 2]);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('foreign_key_check')).toEqual([]);
    const upgraded = createJobRepository(db);
    expect(upgraded.getJob(claimed.id)).toMatchObject({ status: 'succeeded', finishedAt: 3 });
    expect(db.prepare('SELECT request_fingerprint FROM jobs WHERE id = ?').pluck().get(claimed.id)).toBeNull();
    const images = [{ originalName: 'a.png', inputFormat: 'png', width: 1, height: 1, pages: 1, inputBytes: 10 }];
    expect(upgraded.insertJob(newJob({ images }), 4).job.id).toBe(5); // ids never repeat
    db.prepare('DELETE FROM jobs WHERE id = ?').run(claimed.id);
    expect([count(db, 'jobs'), count(db, 'job_images'), count(db, 'job_events')]).toEqual([3, 3, 0]); // cascades still hold
    expect(() => db.prepare(`UPDATE jobs SET status = 'lost' WHERE id = 2`).run()).toThrow(/CHECK constraint failed: jobs_status_check/);
    db.close();
  });
});
