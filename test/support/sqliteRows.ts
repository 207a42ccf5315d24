import path from 'node:path';
import Database from 'better-sqlite3';
import { onTestFinished } from 'vitest';
import { openDatabase } from '../../src/db/sqlite/open.js';
import { createSqliteStore } from '../../src/db/sqlite/store.js';
import type { JobStatus, StoredStatus } from '../../src/jobs/states.js';
import type { JobStore } from '../../src/jobs/store.js';
import { jobInState, tempDir } from './db.js';
import type { Counts, StoreFixture, StoreRows } from './stores.js';

/** A SQLite store on a file of its own in a fresh folder, and the SQL that arranges its rows. */
export async function openSqliteFixture(): Promise<StoreFixture> {
  const file = path.join(tempDir(), 'jobs.db');
  const open = async () => {
    const opened = createSqliteStore(openDatabase(file, { synchronous: 'NORMAL' }));
    onTestFinished(() => opened.close());
    return opened;
  };
  const store = await open();
  const { rows, close } = sqliteRows(file, store);
  onTestFinished(close);
  return { store, rows, anotherInstance: open };
}

/**
 * The rows of the SQLite file `file`, which `store` keeps, arranged and read
 * on a connection of their own (opened on first use, closed by `close`).
 */
export function sqliteRows(file: string, store: JobStore): { rows: StoreRows; close(): void } {
  let connection: Database.Database | null = null;
  const db = (): Database.Database => {
    if (!connection) {
      connection = new Database(file);
      connection.pragma('busy_timeout = 5000');
    }
    return connection;
  };

  const rows: StoreRows = {
    jobInState: (status, fields) => jobInState(db(), store, status, fields),

    async leaseTakenBy(id, owner, leaseExpiresAt) {
      db().prepare(`UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id = ?`).run(owner, leaseExpiresAt, id);
    },

    async rowStatus(id) {
      const status = db().prepare(`SELECT status FROM jobs WHERE id = ?`).pluck().get(id) as StoredStatus | undefined;
      if (status === undefined) throw new Error(`no job ${id}`);
      return status;
    },

    async countedThrough(): Promise<Counts> {
      const byStatus: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      const grouped = db().prepare(`SELECT status, count(*) AS n FROM jobs GROUP BY status`).all() as { status: StoredStatus; n: number }[];
      for (const { status, n } of grouped) byStatus[status === 'scheduled' ? 'queued' : status] += n;
      const images = db()
        .prepare(
          `SELECT coalesce(sum(j.status IN ('scheduled', 'queued', 'running')), 0) AS pending, coalesce(sum(j.status = 'succeeded'), 0) AS completed
             FROM job_images i JOIN jobs j ON j.id = i.job_id`,
        )
        .get() as { pending: number; completed: number };
      return { byStatus, live: byStatus.queued + byStatus.running, imageCounts: images };
    },

    async endAllBehindTheBack(status, finishedAt) {
      db().prepare(
        `UPDATE jobs SET status = ?, finished_at = ?, lease_owner = NULL, lease_expires_at = NULL
          WHERE status IN ('scheduled', 'queued', 'running')`,
      ).run(status, finishedAt);
    },
  };

  return {
    rows,
    close: () => {
      connection?.close();
      connection = null;
    },
  };
}
