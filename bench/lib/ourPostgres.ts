/**
 * The service's queue on PostgreSQL as a side of `npm run bench:queue`: the
 * store the service opens with `DATABASE_URL` set (its pool of 10
 * connections, `synchronous_commit` on, its migrations), with the same
 * enqueue and processing as its SQLite sides (bench/lib/ourQueue.ts), so a
 * job counts once its done state has committed. Its jobs in flight are the
 * ones the bench gives every PostgreSQL side (the service's default).
 */
import pg from 'pg';
import { pino } from 'pino';
import { openPostgres } from '../../src/db/postgres/open.js';
import { createPostgresStore } from '../../src/db/postgres/store.js';
import { runOurQueue } from './ourQueue.js';
import { expectAllDone, type PostgresQueueSide } from './queueSide.js';

/** Rows as they stand, read past the store: the succeeded jobs and their `succeeded` events, one each. */
async function succeededRows(databaseUrl: string): Promise<{ jobs: number; events: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ jobs: number; events: number }>(
      `SELECT (SELECT count(*)::int FROM jobs WHERE status = 'succeeded') AS jobs,
              (SELECT count(*)::int FROM job_events WHERE kind = 'succeeded') AS events`,
    );
    return rows[0] ?? { jobs: Number.NaN, events: Number.NaN };
  } finally {
    await client.end();
  }
}

export const ourPostgresSide: PostgresQueueSide = {
  name: 'ours',
  ours: true,
  async run(databaseUrl, jobs, concurrency) {
    const log = pino({ level: 'silent' });
    const store = await createPostgresStore(await openPostgres(databaseUrl, { log }), { log });
    let throughput;
    try {
      throughput = await runOurQueue(store, jobs, concurrency, 'ours (PostgreSQL)');
    } finally {
      await store.close();
    }
    // The store's counts are kept apart from the rows: both must say every job succeeded once.
    const rows = await succeededRows(databaseUrl);
    expectAllDone('ours (PostgreSQL), rows of jobs', rows.jobs, jobs);
    expectAllDone('ours (PostgreSQL), succeeded events', rows.events, jobs);
    return throughput;
  },
};
