/**
 * The service's own queue as a side of `npm run bench:queue`, on whichever
 * store it is given: what the SQLite sides and the PostgreSQL side share.
 */
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import type { JobStore } from '../../src/jobs/store.js';
import type { NewJob } from '../../src/jobs/types.js';
import { createScheduler } from '../../src/queue/scheduler.js';
import { countdown, expectAllDone, perSec, type Throughput } from './queueSide.js';

/** The service's defaults: 5 jobs in flight, its job timeout and retry settings. */
export const serviceDefaults = loadConfig({});

const noopJob: Omit<NewJob, 'runAt'> = {
  priority: 0, maxAttempts: 3, options: {}, destination: {}, idempotencyKey: null, requestFingerprint: null, inputKey: null, images: [],
};

/**
 * Enqueues `jobs` no-op jobs one by one, each in its own transaction and
 * waited for as a submission's answer waits (`makeDurable`), then runs the
 * scheduler with the service's defaults, `concurrency` jobs in flight
 * (MAX_CONCURRENT_JOBS), and a no-op handler until the last
 * job's `release`, which it calls right after the done state is written.
 * Checks the store's count of succeeded jobs afterwards.
 */
export async function runOurQueue(store: JobStore, jobs: number, concurrency: number, side: string): Promise<Throughput> {
  const enqueueStart = performance.now();
  for (let i = 0; i < jobs; i += 1) {
    const now = Date.now();
    await store.insertJobs([{ ...noopJob, runAt: now }], now);
    await store.makeDurable(); // a submission's answer waits for this: an fsync of the WAL at FULL on SQLite, the commit itself on PostgreSQL
  }
  const enqueuePerSec = perSec(jobs, enqueueStart);

  const ended = countdown(jobs);
  const scheduler = createScheduler({
    store,
    handler: { perform: async () => {}, release: async () => ended.tick() },
    log: pino({ level: 'silent' }),
    maxConcurrentJobs: concurrency,
    jobTimeoutMs: serviceDefaults.jobTimeoutMs,
    retryBaseMs: serviceDefaults.retryBaseMs,
    retryMaxMs: serviceDefaults.retryMaxMs,
  });
  const processStart = performance.now();
  await scheduler.start();
  await ended.done;
  const processedPerSec = perSec(jobs, processStart);
  await scheduler.stop(1_000);

  expectAllDone(side, (await store.countByStatus()).succeeded, jobs);
  return { enqueuePerSec, processedPerSec };
}
