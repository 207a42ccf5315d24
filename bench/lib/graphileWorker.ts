/**
 * graphile-worker as a side of `npm run bench:queue`: the PostgreSQL queue
 * most like ours (one `SKIP LOCKED` claim per job, LISTEN/NOTIFY wake-ups).
 *
 * Settings, and why they are fair:
 *  - its own defaults otherwise, which its documentation calls unbatched:
 *    no local queue (`localQueue.size` -1: each free worker claims its job
 *    with one query; a local queue would also lock jobs no worker is free
 *    for, which ours never does) and no batched completion
 *    (`completeJobBatchDelay` -1: each job's completion is its own commit,
 *    so a job reported done stays done after a crash, as ours does; batching
 *    trades exactly that away);
 *  - `concurrency` jobs in flight (the service's MAX_CONCURRENT_JOBS), a
 *    pool of 10 connections (its default `maxPoolSize`, which it asks to be
 *    at least concurrency + 2), shared by `addJob` and the workers;
 *  - the server's own durability (`synchronous_commit` as the server has
 *    it, on by default): each `addJob` is one call of its `add_job()`
 *    function, one transaction, committed before the next is sent;
 *  - a silent logger and a no-op task.
 * The processing span starts before `run()`, so it includes its workers'
 * start (the connections beyond the one `addJob` used, LISTEN: tens of
 * milliseconds), as ours includes its scheduler's start; it ends once the N-th `job:success` has been seen and
 * no job row is left, since the library reports success before its
 * completion query has returned.
 */
import { EventEmitter } from 'node:events';
import { Logger, makeWorkerUtils, run, type Runner, type WorkerEvents, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { countdown, expectAllDone, perSec, type PostgresQueueSide } from './queueSide.js';

const silent = new Logger(() => () => {});
/** graphile-worker's default `maxPoolSize`. */
const POOL_SIZE = 10;
/** How often the end of the run is looked for once the last success was reported. */
const SETTLE_POLL_MS = 2;

async function jobsLeft(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ left: number }>('SELECT count(*)::int AS left FROM graphile_worker.jobs');
  return rows[0]?.left ?? Number.NaN;
}

export const graphileWorkerSide: PostgresQueueSide = {
  name: 'graphile-worker',
  ours: false,
  async run(databaseUrl, jobs, concurrency) {
    // A pool of our own, the size graphile-worker makes by default, so that it is closed before the database is dropped.
    const pool = new pg.Pool({ connectionString: databaseUrl, max: POOL_SIZE });
    // A connection the server ends surfaces as the failure of the query on it; what pg also emits is not needed.
    pool.on('error', () => {});
    pool.on('connect', (connection) => connection.on('error', () => {}));
    const client = new pg.Client({ connectionString: databaseUrl });
    let utils: WorkerUtils | null = null;
    let runner: Runner | null = null;
    try {
      await client.connect();
      utils = await makeWorkerUtils({ pgPool: pool, logger: silent });
      await utils.migrate();

      const enqueueStart = performance.now();
      for (let i = 0; i < jobs; i += 1) await utils.addJob('noop', {});
      const enqueuePerSec = perSec(jobs, enqueueStart);

      const succeeded = countdown(jobs);
      // An emitter of our own, passed in, so no event of the first jobs is missed while run() starts.
      const events: WorkerEvents = new EventEmitter();
      events.on('job:success', succeeded.tick);
      const processStart = performance.now();
      runner = await run({ pgPool: pool, concurrency, logger: silent, events, noHandleSignals: true, taskList: { noop: async () => {} } });
      await succeeded.done;
      while ((await jobsLeft(client)) > 0) await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
      const processedPerSec = perSec(jobs, processStart);

      expectAllDone('graphile-worker', jobs - (await jobsLeft(client)), jobs);
      return { enqueuePerSec, processedPerSec };
    } finally {
      if (runner !== null) {
        await runner.stop();
        await runner.promise.catch(() => {});
      }
      await utils?.release();
      await pool.end();
      await client.end().catch(() => {});
    }
  },
};
