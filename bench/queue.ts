/**
 * Queue throughput: our queue against established ones, side by side in one
 * run, in two groups: on SQLite, ours against plainjob; on PostgreSQL (when
 * a server answers: `DATABASE_URL`, else postgres://postgres@127.0.0.1:5432),
 * ours (bench/lib/ourPostgres.ts) against graphile-worker
 * (bench/lib/graphileWorker.ts). With `--queued N`, instead:
 * the claim and the service's routes with N jobs waiting against 1,000
 * (`bench/lib/largeQueue.ts`).
 *
 * For each side, on a fresh database file in a temp folder (SQLite) or a
 * fresh database `imgjobs_bench_<random>` dropped after its run (PostgreSQL):
 *  - enqueue: N no-op jobs inserted one by one, each in its own transaction
 *    (what one submission costs; ours also waits for `makeDurable`, as a
 *    submission's answer does: an fsync of the WAL at FULL), timed from the
 *    first insert to the last;
 *  - processed: the worker is started with all N jobs waiting, timed until the
 *    N-th job is recorded as done.
 *
 * Sides, in this order within each round: plainjob with its own defaults (WAL,
 * synchronous NORMAL), ours at synchronous NORMAL (the same settings), ours at
 * synchronous FULL (the service's default), then each side on PostgreSQL
 * (`--pg-jobs` jobs each). Rounds are interleaved so a noisy, shared machine
 * hits all sides alike; the median per side is reported. Up to --rounds
 * rounds run (default 3); another round only starts while the run is
 * expected to end within --budget-s seconds (default 180), so a slow side
 * costs rounds rather than minutes.
 *
 * Fairness: both SQLite sides use better-sqlite3 on a WAL file in the same folder,
 * silent loggers and a no-op handler. Ours runs with the service's defaults
 * (5 jobs in flight). A plainjob worker runs one job at a time and has no
 * concurrency setting, so plainjob gets 5 workers on one queue in this process:
 * 5 jobs in flight as well. Completion is counted from each library's own
 * "job ended" callback (plainjob's onCompleted, our handler's release, both
 * called right after the done state is written), so no polling query competes
 * with the workers; the final state is checked in the database afterwards.
 * Every side on PostgreSQL gets the same 5 jobs in flight; ours counts
 * completions as on SQLite and checks the rows as well as its counts;
 * graphile-worker's settings, and why they are fair, are in its file.
 * pg-boss is not a side:
 * its workers (10.x, the last for Node 20) have no LISTEN/NOTIFY and, after
 * every fetch, found jobs or not, sleep out the rest of their polling
 * interval (0.5 s at least), so one-job no-op throughput would measure that
 * interval, not its queue.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { better, defineQueue, defineWorker, JobStatus as PlainjobStatus, type Logger as PlainjobLogger } from 'plainjob';
import { openDatabase } from '../src/db/sqlite/open.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import { graphileWorkerSide } from './lib/graphileWorker.js';
import { largeQueueBench } from './lib/largeQueue.js';
import { ourPostgresSide } from './lib/ourPostgres.js';
import { runOurQueue, serviceDefaults } from './lib/ourQueue.js';
import { createBenchDatabase, serverUrl, shown, unreachable } from './lib/postgres.js';
import { countdown, expectAllDone, perSec, type PostgresQueueSide, type Throughput } from './lib/queueSide.js';

interface Side {
  readonly name: string;
  readonly synchronous: 'NORMAL' | 'FULL';
  run(file: string, jobs: number): Promise<Throughput>;
}

/**
 * The queues on PostgreSQL, run in this order in each round. The service's
 * own queue (`ours: true`) is compared with each of the others
 * (`ratio_vs_<name>=`).
 */
const postgresSides: readonly PostgresQueueSide[] = [graphileWorkerSide, ourPostgresSide];

const silentPlainjobLogger: PlainjobLogger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

const plainjobSide: Side = {
  name: 'plainjob',
  synchronous: 'NORMAL',
  async run(file, jobs) {
    const queue = defineQueue({ connection: better(new Database(file)), logger: silentPlainjobLogger });
    try {
      const enqueueStart = performance.now();
      for (let i = 0; i < jobs; i += 1) queue.add('noop', {});
      const enqueuePerSec = perSec(jobs, enqueueStart);

      const completed = countdown(jobs);
      const workers = Array.from({ length: serviceDefaults.maxConcurrentJobs }, () =>
        defineWorker('noop', async () => {}, { queue, logger: silentPlainjobLogger, onCompleted: completed.tick }),
      );
      const processStart = performance.now();
      const loops = workers.map((worker) => worker.start());
      await completed.done;
      const processedPerSec = perSec(jobs, processStart);
      await Promise.all(workers.map((worker) => worker.stop()));
      await Promise.all(loops);

      expectAllDone('plainjob', queue.countJobs({ status: PlainjobStatus.Done }), jobs);
      return { enqueuePerSec, processedPerSec };
    } finally {
      queue.close();
    }
  },
};

function oursSide(synchronous: 'NORMAL' | 'FULL'): Side {
  return {
    name: 'ours',
    synchronous,
    async run(file, jobs) {
      const store = createSqliteStore(openDatabase(file, { synchronous }));
      try {
        return await runOurQueue(store, jobs, serviceDefaults.maxConcurrentJobs, `ours ${synchronous}`);
      } finally {
        await store.close();
      }
    },
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function positiveInteger(flag: string, value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1) throw new Error(`--${flag} must be a positive integer, got ${value}`);
  return parsed;
}

/** A side's run on a fresh PostgreSQL database, dropped afterwards whatever the run did. */
async function runOnPostgres(side: PostgresQueueSide, server: string, jobs: number): Promise<Throughput> {
  const database = await createBenchDatabase(server);
  try {
    return await side.run(database.url, jobs, serviceDefaults.maxConcurrentJobs);
  } finally {
    await database.drop();
  }
}

const medianOf = (runs: readonly Throughput[]): Throughput => ({
  enqueuePerSec: median(runs.map((run) => run.enqueuePerSec)),
  processedPerSec: median(runs.map((run) => run.processedPerSec)),
});

const ratioName = (name: string): string => name.replace(/[^a-z0-9]+/gi, '_').toLowerCase();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string', default: '20000' },
      'pg-jobs': { type: 'string', default: '5000' },
      rounds: { type: 'string', default: '3' },
      'budget-s': { type: 'string', default: '180' },
      queued: { type: 'string' },
      claims: { type: 'string', default: '2000' },
      reads: { type: 'string', default: '200' },
    },
  });
  if (values.queued !== undefined) {
    await largeQueueBench({
      queued: positiveInteger('queued', values.queued), claims: positiveInteger('claims', values.claims), reads: positiveInteger('reads', values.reads),
    });
    return;
  }
  const jobs = positiveInteger('jobs', values.jobs);
  const pgJobs = positiveInteger('pg-jobs', values['pg-jobs']);
  const maxRounds = positiveInteger('rounds', values.rounds);
  const budgetMs = positiveInteger('budget-s', values['budget-s']) * 1_000;
  const sides = [plainjobSide, oursSide('NORMAL'), oursSide('FULL')];
  const server = serverUrl();
  const postgresAbsent = await unreachable(server);
  const pgSides = postgresAbsent === null ? postgresSides : [];

  const cpus = os.cpus();
  console.log(`command: npm run bench:queue -- --jobs ${jobs} --pg-jobs ${pgJobs} --rounds ${maxRounds} --budget-s ${budgetMs / 1_000}`);
  console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log(`${jobs} no-op jobs per run; sides interleaved in each round (plainjob, ours NORMAL, ours FULL)`);
  if (postgresAbsent === null) {
    console.log(`PostgreSQL: ${pgJobs} no-op jobs per run on ${shown(server)}, a fresh database each; sides after those, in each round (${pgSides.map((side) => side.name).join(', ')})`);
  } else {
    console.log(`postgres sides skipped: ${postgresAbsent}`);
  }
  const concurrency = serviceDefaults.maxConcurrentJobs;
  console.log(`concurrency: ours maxConcurrentJobs=${concurrency}; plainjob ${concurrency} workers on one queue (one job each at a time); PostgreSQL sides ${concurrency} jobs in flight`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-'));
  const results = sides.map(() => [] as Throughput[]);
  const pgResults = pgSides.map(() => [] as Throughput[]);
  const runStart = performance.now();
  let slowestRoundMs = 0;
  let rounds = 0;
  try {
    while (rounds < maxRounds && (rounds === 0 || performance.now() - runStart + slowestRoundMs <= budgetMs)) {
      rounds += 1;
      const roundStart = performance.now();
      for (const [index, side] of sides.entries()) {
        const result = await side.run(path.join(dir, `${side.name}-${side.synchronous}-${rounds}.db`), jobs);
        results[index]!.push(result);
        console.log(
          `round ${rounds} ${side.name.padEnd(8)} ${side.synchronous.padEnd(6)} ` +
            `enqueue ${Math.round(result.enqueuePerSec)} jobs/s, processed ${Math.round(result.processedPerSec)} jobs/s`,
        );
      }
      for (const [index, side] of pgSides.entries()) {
        const result = await runOnPostgres(side, server, pgJobs);
        pgResults[index]!.push(result);
        console.log(`round ${rounds} ${side.name} (PostgreSQL) enqueue ${Math.round(result.enqueuePerSec)} jobs/s, processed ${Math.round(result.processedPerSec)} jobs/s`);
      }
      slowestRoundMs = Math.max(slowestRoundMs, performance.now() - roundStart);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const medians = results.map(medianOf);
  const budgetNote = rounds < maxRounds ? `; ${maxRounds} asked, the ${budgetMs / 1_000} s budget allowed ${rounds}` : '';
  console.log(`\nmedian of ${rounds} round(s)${budgetNote}, total ${((performance.now() - runStart) / 1_000).toFixed(0)} s:`);
  console.log('side      synchronous  enqueue jobs/s  processed jobs/s');
  for (const [index, side] of sides.entries()) {
    const { enqueuePerSec, processedPerSec } = medians[index]!;
    console.log(
      `${side.name.padEnd(9)} ${side.synchronous.padEnd(12)} ${String(Math.round(enqueuePerSec)).padStart(14)}  ` +
        `${String(Math.round(processedPerSec)).padStart(16)}`,
    );
  }
  const [plainjob, oursNormal, oursFull] = medians.map((m) => m.processedPerSec) as [number, number, number];
  console.log(`ratio_vs_plainjob=${(oursNormal / plainjob).toFixed(2)}`);
  console.log(`ratio_vs_plainjob_full=${(oursFull / plainjob).toFixed(2)}`);

  if (pgSides.length === 0) return;
  const pgMedians = pgResults.map(medianOf);
  console.log(`\nPostgreSQL, ${pgJobs} jobs per run, median of ${rounds} round(s):`);
  console.log('side              enqueue jobs/s  processed jobs/s');
  for (const [index, side] of pgSides.entries()) {
    const { enqueuePerSec, processedPerSec } = pgMedians[index]!;
    console.log(`${side.name.padEnd(17)} ${String(Math.round(enqueuePerSec)).padStart(14)}  ${String(Math.round(processedPerSec)).padStart(16)}`);
  }
  for (const [index, side] of pgSides.entries()) {
    if (!side.ours) continue;
    for (const [other, library] of pgSides.entries()) {
      if (library.ours) continue;
      console.log(`ratio_vs_${ratioName(library.name)}=${(pgMedians[index]!.processedPerSec / pgMedians[other]!.processedPerSec).toFixed(2)}`);
    }
  }
}

// A failed side may leave a scheduler retrying in the background: exit instead of waiting on it.
await main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
