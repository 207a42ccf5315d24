import type pg from 'pg';
import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { openPostgres } from '../../src/db/postgres/open.js';
import { createPostgresStore } from '../../src/db/postgres/store.js';
import type { JobStatus, StoredStatus } from '../../src/jobs/states.js';
import type { JobStore } from '../../src/jobs/store.js';
import { arrangeJob } from './db.js';
import { testPostgres } from './postgres.js';
import type { Counts, StoreFixture, StoreRows } from './stores.js';

const silent = pino({ level: 'silent' });

/** A PostgreSQL store on a database of its own, and the SQL that arranges its rows. */
export async function openPostgresFixture(instanceId?: string): Promise<StoreFixture> {
  const url = await testPostgres();
  const open = async (id?: string) => {
    const opened = await createPostgresStore(await openPostgres(url, { log: silent }), { log: silent, instanceId: id });
    onTestFinished(() => opened.close());
    return opened;
  };
  const store = await open(instanceId);
  const { rows, close } = postgresRows(url, store);
  onTestFinished(close);
  return { store, rows, anotherInstance: open };
}

/**
 * The rows of the PostgreSQL database at `url`, which `store` keeps,
 * arranged and read through a small pool of their own (opened on first use,
 * ended by `close`).
 */
export function postgresRows(url: string, store: JobStore): { rows: StoreRows; close(): Promise<void> } {
  let opened: Promise<pg.Pool> | null = null;
  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> => {
    opened ??= openPostgres(url, { log: silent, maxConnections: 2 });
    return (await (await opened).query<R>(text, values)).rows;
  };

  const rows: StoreRows = {
    jobInState: (status, fields = {}) =>
      arrangeJob(store, status, fields, (values) =>
        query(
          `UPDATE jobs SET status = $1, attempts = $2, finished_at = $3, lease_owner = $4, lease_expires_at = $5, last_error_code = $6, last_error_message = $7
            WHERE id = $8`,
          values,
        ),
      ),

    async leaseTakenBy(id, owner, leaseExpiresAt) {
      await query(`UPDATE jobs SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3`, [owner, leaseExpiresAt, id]);
    },

    async rowStatus(id) {
      const [row] = await query<{ status: StoredStatus }>(`SELECT status FROM jobs WHERE id = $1`, [id]);
      if (!row) throw new Error(`no job ${id}`);
      return row.status;
    },

    async countedThrough(): Promise<Counts> {
      const byStatus: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      const grouped = await query<{ status: StoredStatus; n: number }>(`SELECT status, count(*) AS n FROM jobs GROUP BY status`);
      for (const { status, n } of grouped) byStatus[status === 'scheduled' ? 'queued' : status] += n;
      const [images] = await query<{ pending: number; completed: number }>(
        `SELECT count(*) FILTER (WHERE j.status IN ('scheduled', 'queued', 'running')) AS pending,
                count(*) FILTER (WHERE j.status = 'succeeded') AS completed
           FROM job_images i JOIN jobs j ON j.id = i.job_id`,
      );
      return { byStatus, live: byStatus.queued + byStatus.running, imageCounts: images ?? { pending: 0, completed: 0 } };
    },

    async endAllBehindTheBack(status, finishedAt) {
      await query(
        `UPDATE jobs SET status = $1, finished_at = $2, lease_owner = NULL, lease_expires_at = NULL
          WHERE status IN ('scheduled', 'queued', 'running')`,
        [status, finishedAt],
      );
    },
  };

  return {
    rows,
    close: async () => {
      if (opened) await (await opened).end();
      opened = null;
    },
  };
}
