/**
 * Queue throughput: our SQLite queue against plainjob, side by side in one run.
 * With `--queued N`, instead: the claim and the service's routes with N jobs
 * waiting against 1,000 (`bench/lib/largeQueue.ts`).
 *
 * For each side, on a fresh database file in a temp folder:
 *  - enqueue: N no-op jobs inserted one by one, each in its own transaction
 *    (what one submission costs; ours also waits for `makeDurable`, as a
 *    submission's answer does: an fsync of the WAL at FULL), timed from the
 *    first insert to the last;
 *  - processed: the worker is started with all N jobs waiting, timed until the
 *    N-th job is recorded as done.
 *
 * Sides, in this order within each round: plainjob with its own defaults (WAL,
 * synchronous NORMAL), ours at synchronous NORMAL (the same settings), ours at
 * synchronous FULL (the service's default). Rounds are interleaved so a noisy,
 * shared machine hits all sides alike; the median per side is reported. Up to
 * --rounds rounds run (default 3); another round only starts while the run is
 * expected to end within --budget-s seconds (default 90), so a slow side
 * costs rounds rather than minutes.
 *
 * Fairness: both sides use better-sqlite3 on a WAL file in the same folder,
 * silent loggers and a no-op handler. Ours runs with the service's defaults
 * (5 jobs in flight). A plainjob worker runs one job at a time and has no
 * concurrency setting, so plainjob gets 5 workers on one queue in this process:
 * 5 jobs in flight as well. Completion is counted from each library's own
 * "job ended" callback (plainjob's onCompleted, our handler's release, both
 * called right after the done state is written), so no polling query competes
 * with the workers; the final state is checked in the database afterwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { better, defineQueue, defineWorker, JobStatus as PlainjobStatus, type Logger as PlainjobLogger } from 'plainjob';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/sqlite/open.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import type { NewJob } from '../src/jobs/types.js';
import { createScheduler } from '../src/queue/scheduler.js';
import { largeQueueBench } from './lib/largeQueue.js';

interface Throughput {
  readonly enqueuePerSec: number;
  readonly processedPerSec: number;
}

interface Side {
  readonly name: string;
  readonly synchronous: 'NORMAL' | 'FULL';
  run(file: string, jobs: number): Promise<Throughput>;
}

/** The service's defaults: 5 jobs in flight, its job timeout and retry settings. */
const defaults = loadConfig({});
/** A side that finishes no job for this long is reported as stuck instead of hanging the run. */
const STALL_MS = 30_000;

const perSec = (count: number, startedAt: number): number => count / ((performance.now() - startedAt) / 1_000);

/** `done` resolves on the `total`-th call of `tick`, or rejects when no tick came for STALL_MS. */
function countdown(total: number): { tick: () => void; done: Promise<void> } {
  let left = total;
  let lastTick = performance.now();
  let resolve = (): void => {};
  let reject = (_error: Error): void => {};
  const done = new Promise<void>((onDone, onStall) => {
    resolve = onDone;
    reject = onStall;
  });
  const watchdog = setInterval(() => {
    if (performance.now() - lastTick > STALL_MS) reject(new Error(`stuck: ${total - left} of ${total} jobs done`));
  }, 1_000);
  const stopWatchdog = (): void => clearInterval(watchdog);
  void done.then(stopWatchdog, stopWatchdog);
  return {
    tick: () => {
      lastTick = performance.now();
      left -= 1;
      if (left === 0) resolve();
    },
    done,
  };
}

function expectAllDone(side: string, done: number, jobs: number): void {
  if (done !== jobs) throw new Error(`${side}: ${done} of ${jobs} jobs are done in the database`);
}

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
      const workers = Array.from({ length: defaults.maxConcurrentJobs }, () =>
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
  const newJob: Omit<NewJob, 'runAt'> = {
    priority: 0, maxAttempts: 3, options: {}, destination: {}, idempotencyKey: null, requestFingerprint: null, inputKey: null, images: [],
  };
  return {
    name: 'ours',
    synchronous,
    async run(file, jobs) {
      const store = createSqliteStore(openDatabase(file, { synchronous }));
      try {
        const enqueueStart = performance.now();
        for (let i = 0; i < jobs; i += 1) {
          const now = Date.now();
          await store.insertJobs([{ ...newJob, runAt: now }], now);
          await store.makeDurable(); // a submission's answer waits for this: an fsync of the WAL at FULL
        }
        const enqueuePerSec = perSec(jobs, enqueueStart);

        const ended = countdown(jobs);
        const scheduler = createScheduler({
          store,
          handler: { perform: async () => {}, release: async () => ended.tick() },
          log: pino({ level: 'silent' }),
          maxConcurrentJobs: defaults.maxConcurrentJobs,
          jobTimeoutMs: defaults.jobTimeoutMs,
          retryBaseMs: defaults.retryBaseMs,
          retryMaxMs: defaults.retryMaxMs,
        });
        const processStart = performance.now();
        await scheduler.start();
        await ended.done;
        const processedPerSec = perSec(jobs, processStart);
        await scheduler.stop(1_000);

        expectAllDone(`ours ${synchronous}`, (await store.countByStatus()).succeeded, jobs);
        return { enqueuePerSec, processedPerSec };
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '3' },
      'budget-s': { type: 'string', default: '90' },
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
  const maxRounds = positiveInteger('rounds', values.rounds);
  const budgetMs = positiveInteger('budget-s', values['budget-s']) * 1_000;
  const sides = [plainjobSide, oursSide('NORMAL'), oursSide('FULL')];

  const cpus = os.cpus();
  console.log(`command: npm run bench:queue -- --jobs ${jobs} --rounds ${maxRounds} --budget-s ${budgetMs / 1_000}`);
  console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log(`${jobs} no-op jobs per run; sides interleaved in each round (plainjob, ours NORMAL, ours FULL)`);
  const concurrency = defaults.maxConcurrentJobs;
  console.log(`concurrency: ours maxConcurrentJobs=${concurrency}; plainjob ${concurrency} workers on one queue (one job each at a time)`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-'));
  const results = sides.map(() => [] as Throughput[]);
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
      slowestRoundMs = Math.max(slowestRoundMs, performance.now() - roundStart);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const medians = results.map((runs) => ({
    enqueuePerSec: median(runs.map((run) => run.enqueuePerSec)),
    processedPerSec: median(runs.map((run) => run.processedPerSec)),
  }));
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
}

// A failed side may leave a scheduler retrying in the background: exit instead of waiting on it.
await main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
