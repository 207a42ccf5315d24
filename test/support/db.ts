import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { onTestFinished } from 'vitest';
import { openDatabase } from '../../src/db/sqlite/open.js';
import { createSqliteStore, type SqliteStore } from '../../src/db/sqlite/store.js';
import type { JobStatus } from '../../src/jobs/states.js';
import type { JobStore } from '../../src/jobs/store.js';
import type { AttemptRef, Job, NewJob, StoredJob } from '../../src/jobs/types.js';
import type { ArrangedFields } from './stores.js';

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
  readonly store: SqliteStore;
}

/** A real SQLite file with the real migrations, closed and deleted after the test. */
export function testDb(): TestDb {
  const dir = tempDir();
  const file = path.join(dir, 'jobs.db');
  const db = openDatabase(file, { synchronous: 'NORMAL' });
  onTestFinished(() => {
    if (db.open) db.close();
  });
  return { dir, file, db, store: createSqliteStore(db) };
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

/** Stores one job in its own transaction, as one submission does. */
export async function insertJob(store: JobStore, job: NewJob, now: number): Promise<StoredJob> {
  const [stored] = await store.insertJobs([job], now);
  if (!stored) throw new Error('insertJobs returned nothing');
  return stored;
}

/** Ends one attempt as succeeded, claiming nothing in its place; false when the attempt no longer held its job. */
export async function complete(store: JobStore, ref: AttemptRef, now: number): Promise<boolean> {
  const { completed } = await store.completeAndClaimDue([ref], now, ref.owner, 1, 0);
  return completed[0] === true;
}

/**
 * Puts a job in any state directly, the way a finished or crashed process
 * would have left it (only for arranging tests): inserted through the store,
 * then `write` sets `[status, attempts, finished_at, lease_owner,
 * lease_expires_at, last_error_code, last_error_message, id]` behind its
 * back with the backend's own UPDATE, and the store counts again, as a
 * restart would.
 */
export async function arrangeJob(store: JobStore, status: JobStatus, fields: ArrangedFields, write: (values: unknown[]) => unknown): Promise<Job> {
  const { job } = await insertJob(store, newJob(fields.job), 0);
  const running = status === 'running';
  // A queued job due later is stored as the store stores it: scheduled, out of the claim's reach until then.
  const stored = status === 'queued' && job.runAt > Date.now() ? 'scheduled' : status;
  await write([
    stored,
    fields.attempts ?? (status === 'queued' ? 0 : 1),
    ['succeeded', 'failed', 'cancelled'].includes(status) ? (fields.finishedAt ?? 0) : null,
    running ? (fields.leaseOwner ?? 'elsewhere:1:dead') : null,
    running ? (fields.leaseExpiresAt ?? Number.MAX_SAFE_INTEGER) : null,
    fields.lastError?.code ?? null,
    fields.lastError?.message ?? null,
    job.id,
  ]);
  await store.recountJobs();
  const updated = await store.getJob(job.id);
  if (!updated) throw new Error('job vanished');
  return updated;
}

/** `arrangeJob` on a SQLite file, through the test's own connection `db`. */
export function jobInState(db: Database.Database, store: JobStore, status: JobStatus, fields: ArrangedFields = {}): Promise<Job> {
  return arrangeJob(store, status, fields, (values) =>
    db
      .prepare(
        `UPDATE jobs SET status = ?, attempts = ?, finished_at = ?, lease_owner = ?, lease_expires_at = ?, last_error_code = ?, last_error_message = ?
          WHERE id = ?`,
      )
      .run(...values),
  );
}
