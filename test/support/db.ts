import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { onTestFinished } from 'vitest';
import { createJobRepository, type Job, type JobRepository, type NewJob } from '../../src/db/jobRepository.js';
import { openDatabase } from '../../src/db/open.js';
import type { JobStatus } from '../../src/jobs/states.js';

/** A fresh folder under the system temp dir, removed when the test finishes. */
export function tempDir(prefix = 'image-jobs-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestDb {
  readonly dir: string;
  readonly file: string;
  readonly db: Database.Database;
  readonly repo: JobRepository;
}

/** A real SQLite file with the real migrations, closed and deleted after the test. */
export function testDb(): TestDb {
  const dir = tempDir();
  const file = path.join(dir, 'jobs.db');
  const db = openDatabase(file, { synchronous: 'NORMAL' });
  onTestFinished(() => {
    if (db.open) db.close();
  });
  return { dir, file, db, repo: createJobRepository(db) };
}

export function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    priority: 0,
    maxAttempts: 3,
    options: { format: 'webp' },
    destination: { type: 'local' },
    idempotencyKey: null,
    requestFingerprint: null,
    inputKey: null,
    runAt: 0,
    images: [],
    ...overrides,
  };
}

/**
 * Puts a job in any state directly, the way a finished or crashed process
 * would have left it (only for arranging tests).
 */
export function jobInState(
  db: Database.Database,
  repo: JobRepository,
  status: JobStatus,
  fields: { finishedAt?: number; leaseOwner?: string; leaseExpiresAt?: number; attempts?: number; job?: Partial<NewJob> } = {},
): Job {
  const { job } = repo.insertJob(newJob(fields.job), 0);
  const running = status === 'running';
  db.prepare(
    `UPDATE jobs SET status = ?, attempts = ?, finished_at = ?, lease_owner = ?, lease_expires_at = ? WHERE id = ?`,
  ).run(
    status,
    fields.attempts ?? (status === 'queued' ? 0 : 1),
    ['succeeded', 'failed', 'cancelled'].includes(status) ? (fields.finishedAt ?? 0) : null,
    running ? (fields.leaseOwner ?? 'elsewhere:1:dead') : null,
    running ? (fields.leaseExpiresAt ?? Number.MAX_SAFE_INTEGER) : null,
    job.id,
  );
  repo.recountJobs(); // a write behind the repository's back, as a restart would find it
  const updated = repo.getJob(job.id);
  if (!updated) throw new Error('job vanished');
  return updated;
}
