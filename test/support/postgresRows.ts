import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { openPostgres } from '../../src/db/postgres/open.js';
import { createPostgresStore } from '../../src/db/postgres/store.js';
import type { JobStatus, StoredStatus } from '../../src/jobs/states.js';
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
  // A small pool of its own for writes behind the store's back.
  const pool = await openPostgres(url, { log: silent, maxConnections: 2 });
  onTestFinished(() => pool.end());

  const rows: StoreRows = {
    jobInState: (status, fields = {}) =>
      arrangeJob(store, status, fields, (values) =>
        pool.query(`UPDATE jobs SET status = $1, attempts = $2, finished_at = $3, lease_owner = $4, lease_expires_at = $5 WHERE id = $6`, values),
      ),

    async rowStatus(id) {
      const { rows: [row] } = await pool.query<{ status: StoredStatus }>(`SELECT status FROM jobs WHERE id = $1`, [id]);
      if (!row) throw new Error(`no job ${id}`);
      return row.status;
    },

    async countedThrough(): Promise<Counts> {
      const byStatus: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      const { rows: grouped } = await pool.query<{ status: StoredStatus; n: number }>(`SELECT status, count(*) AS n FROM jobs GROUP BY status`);
      for (const { status, n } of grouped) byStatus[status === 'scheduled' ? 'queued' : status] += n;
      const { rows: [images] } = await pool.query<{ pending: number; completed: number }>(
        `SELECT count(*) FILTER (WHERE j.status IN ('scheduled', 'queued', 'running')) AS pending,
                count(*) FILTER (WHERE j.status = 'succeeded') AS completed
           FROM job_images i JOIN jobs j ON j.id = i.job_id`,
      );
      return { byStatus, live: byStatus.queued + byStatus.running, imageCounts: images ?? { pending: 0, completed: 0 } };
    },

    async endAllBehindTheBack(status, finishedAt) {
      await pool.query(
        `UPDATE jobs SET status = $1, finished_at = $2, lease_owner = NULL, lease_expires_at = NULL
          WHERE status IN ('scheduled', 'queued', 'running')`,
        [status, finishedAt],
      );
    },
  };

  return { store, rows, anotherInstance: open };
}
