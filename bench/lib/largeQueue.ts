/**
 * `npm run bench:queue -- --queued N`: what a queue of N waiting jobs costs
 * against one of 1,000, side by side in one run.
 *
 * Two data folders are filled alike through the job repository: N (and
 * 1,000) jobs due from one hour ahead onwards, a second apart, priorities 0-9,
 * one image row each; 1,000 succeeded jobs; once the service has started,
 * 1,000 temp files idle past the sweeper's grace period, half of them owned
 * by waiting jobs. Then, alternating between the two sides at every step:
 *  - claim: 2 due jobs are inserted, then one claim asks for 5 (fewer due
 *    than asked: the case that used to walk every queued job); only the claim
 *    is timed, median of --claims;
 *  - the service itself (in this process, on port 0): each read route,
 *    median latency of --reads requests per route, requests alternating
 *    between the sides; then POST /jobs with a 64×64 PNG at concurrency 8,
 *    requests/s over three interleaved rounds;
 *  - stalls: the longest event-loop delay (perf_hooks, 1 ms resolution)
 *    during one sweep, and during three memory samples and metrics scrapes.
 *    A first sweep runs right after the start; the measured one prunes the
 *    submissions' jobs and removes their result folders and the idle temp
 *    files no job owns.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import sharp from 'sharp';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/sqlite/open.js';
import { createSqliteStore } from '../../src/db/sqlite/store.js';
import type { NewJob } from '../../src/jobs/types.js';
import { createService, type Service } from '../../src/service.js';
import { loadAverages, median } from './figures.js';
import { postLoad, send } from './httpLoad.js';

export interface LargeQueueOptions {
  readonly queued: number;
  readonly claims: number;
  readonly reads: number;
}

const SMALL = 1_000;
const FILL_BATCH = 10_000;
const LEASE_MS = 30_000;
const HOUR_MS = 3_600_000;
const READ_ROUTES = ['/health', '/ready', '/metrics', '/stats', '/debug/memory-stats'] as const;
const SUBMIT_ROUNDS = 3;
const SUBMISSIONS_PER_ROUND = 200;
const SUBMIT_CONCURRENCY = 8;

interface Side {
  readonly label: string;
  readonly queued: number;
  readonly dataDir: string;
}

const image = { originalName: 'a.png', inputFormat: 'png', width: 64, height: 64, pages: 1, inputBytes: 100 };
const waitingJob = (runAt: number, priority: number, inputKey: string | null): NewJob => ({
  priority, maxAttempts: 3, options: { format: 'webp' }, destination: { type: 'local' }, idempotencyKey: null, requestFingerprint: null, inputKey, runAt, images: [image],
});

const ratio = (large: number, small: number): string => (large / small).toFixed(2);

/** Fills one side's data folder: the waiting jobs, terminal jobs to prune. Returns keys of waiting jobs. */
async function fill(side: Side): Promise<string[]> {
  const store = createSqliteStore(openDatabase(path.join(side.dataDir, 'jobs.db'), { synchronous: 'NORMAL' }));
  const start = Date.now();
  const ownedKeys: string[] = [];
  for (let first = 0; first < side.queued; first += FILL_BATCH) {
    const batch: NewJob[] = [];
    for (let i = first; i < Math.min(side.queued, first + FILL_BATCH); i += 1) {
      const key = randomUUID();
      if (ownedKeys.length < 500) ownedKeys.push(key);
      batch.push(waitingJob(start + HOUR_MS + i * 1_000, i % 10, key));
    }
    await store.insertJobs(batch, start);
  }
  await store.insertJobs(Array.from({ length: 1_000 }, () => waitingJob(start, 0, null)), start);
  const done = (await store.claimDue('filler', start, LEASE_MS, 1_000)).map((job) => ({ jobId: job.id, owner: 'filler', attempt: job.attempts }));
  await store.completeAndClaimDue(done, start, 'filler', LEASE_MS, 0);
  await store.checkpoint();
  await store.close();
  return ownedKeys;
}

/** Temp files idle past the sweeper's grace period: one for each of `ownedKeys`, and as many owned by no job. */
function idleTempFiles(side: Side, ownedKeys: readonly string[]): void {
  const tmp = path.join(side.dataDir, 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const idleSince = new Date(Date.now() - HOUR_MS);
  for (const key of [...ownedKeys, ...ownedKeys.map(() => randomUUID())]) {
    const file = path.join(tmp, `${key}.0`);
    fs.writeFileSync(file, 'x');
    fs.utimesSync(file, idleSince, idleSince);
  }
}

/** Median time of one claim of 5 when 2 jobs are due, on each side, the sides taking turns. */
async function claimCosts(sides: readonly Side[], claims: number): Promise<number[]> {
  const stores = sides.map((side) => createSqliteStore(openDatabase(path.join(side.dataDir, 'jobs.db'), { synchronous: 'NORMAL' })));
  const times = sides.map(() => [] as number[]);
  for (let i = 0; i < claims; i += 1) {
    for (const [index, store] of stores.entries()) {
      const now = Date.now();
      await store.insertJobs([waitingJob(now, 0, null), waitingJob(now, 0, null)], now);
      const started = performance.now();
      const claimed = await store.claimDue('bench', now, LEASE_MS, 5);
      times[index]!.push(performance.now() - started);
      await store.completeAndClaimDue(claimed.map((job) => ({ jobId: job.id, owner: 'bench', attempt: job.attempts })), now, 'bench', LEASE_MS, 0);
    }
  }
  await Promise.all(stores.map((store) => store.close()));
  return times.map(median);
}

/** The longest event-loop delay while `work` runs, in ms (1 ms resolution). */
async function maxStallMs(work: () => Promise<unknown>): Promise<number> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  await work();
  delay.disable();
  return delay.max / 1e6;
}

/** Stalls of the sweeper (one sweep) and of the samplers (three memory samples and metrics scrapes). */
async function stalls(service: Service): Promise<{ sweep: number; samplers: number }> {
  const sweep = await maxStallMs(() => service.ops.sweeper.sweep(Date.now()));
  const samplers = await maxStallMs(async () => {
    for (let i = 0; i < 3; i += 1) {
      service.ops.sampler.sample();
      await service.ops.metrics.registry.metrics();
    }
  });
  return { sweep, samplers };
}

async function startService(side: Side, queued: number): Promise<{ service: Service; base: string; startMs: number }> {
  const config = loadConfig({
    DATA_DIR: side.dataDir, PORT: '0', MIN_FREE_DISK_BYTES: '0', MAX_QUEUED_JOBS: String(queued * 2 + 10_000), LOG_LEVEL: 'silent',
  });
  const service = await createService(config, pino({ level: 'silent' }));
  const started = performance.now();
  const port = await service.start();
  return { service, base: `http://127.0.0.1:${port}`, startMs: performance.now() - started };
}

export async function largeQueueBench(options: LargeQueueOptions): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-large-queue-'));
  const sides: Side[] = [
    { label: '1k', queued: SMALL, dataDir: path.join(root, 'small') },
    { label: 'large', queued: options.queued, dataDir: path.join(root, 'large') },
  ];
  const cpus = os.cpus();
  console.log(`command: npm run bench:queue -- --queued ${options.queued} --claims ${options.claims} --reads ${options.reads}`);
  console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log(`load average at start: ${loadAverages()}`);
  console.log(`sides: ${SMALL} and ${options.queued} waiting jobs (due from 1 h ahead); steps alternate between the sides`);
  const running: Service[] = [];
  try {
    const ownedKeys: string[][] = [];
    for (const side of sides) {
      const started = performance.now();
      ownedKeys.push(await fill(side));
      console.log(`fill ${side.label}: ${side.queued} jobs in ${((performance.now() - started) / 1_000).toFixed(1)} s`);
    }

    const [claimSmall, claimLarge] = (await claimCosts(sides, options.claims)) as [number, number];
    console.log(`claim_ms 1k=${claimSmall.toFixed(3)} large=${claimLarge.toFixed(3)} ratio=${ratio(claimLarge, claimSmall)}`);

    const services = [];
    for (const side of sides) {
      const started = await startService(side, options.queued);
      running.push(started.service);
      services.push(started);
      console.log(`start ${side.label} (counts every job once): ${started.startMs.toFixed(0)} ms`);
      // A first sweep (pruning the terminal jobs of the fill and the claims) warms the code the measured one runs.
      await started.service.ops.sweeper.sweep(Date.now());
      idleTempFiles(side, ownedKeys[services.length - 1]!);
    }

    const agents = services.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    let worstReadRatio = 0;
    for (const route of READ_ROUTES) {
      const times = services.map(() => [] as number[]);
      for (let i = 0; i < options.reads; i += 1) {
        for (const [index, { base }] of services.entries()) {
          const started = performance.now();
          const reply = await send(agents[index]!, 'GET', `${base}${route}`);
          times[index]!.push(performance.now() - started);
          if (reply.status !== 200) throw new Error(`GET ${route} answered ${reply.status}: ${reply.text}`);
        }
      }
      const [small, large] = times.map(median) as [number, number];
      worstReadRatio = Math.max(worstReadRatio, large / small);
      console.log(`GET ${route} median_ms 1k=${small.toFixed(3)} large=${large.toFixed(3)} ratio=${ratio(large, small)}`);
    }
    for (const agent of agents) agent.destroy();

    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a7' } }).png().toBuffer();
    const submitted = services.map(() => ({ requests: 0, seconds: 0 }));
    for (let round = 0; round < SUBMIT_ROUNDS; round += 1) {
      for (const [index, { base }] of services.entries()) {
        const load = await postLoad({
          url: `${base}/jobs`, body: png, headers: { 'content-type': 'image/png' }, requests: SUBMISSIONS_PER_ROUND, concurrency: SUBMIT_CONCURRENCY,
        });
        if (load.statuses[202] !== load.requests) throw new Error(`POST /jobs answered ${JSON.stringify(load.statuses)}`);
        submitted[index]!.requests += load.requests;
        submitted[index]!.seconds += load.requests / load.perSec;
      }
    }
    const [submitSmall, submitLarge] = submitted.map((side) => side.requests / side.seconds) as [number, number];
    console.log(`POST /jobs req_per_s 1k=${submitSmall.toFixed(0)} large=${submitLarge.toFixed(0)} cost_ratio=${ratio(submitSmall, submitLarge)}`);

    // The submitted jobs' conversions must not run beside the measured sweeps.
    while (services.some(({ service }) => service.jobs.scheduler.running > 0)) await new Promise((resolve) => setTimeout(resolve, 100));
    const seen = [];
    for (const { service } of services) seen.push(await stalls(service));
    const [stallSmall, stallLarge] = seen as [{ sweep: number; samplers: number }, { sweep: number; samplers: number }];
    console.log(`max_stall_ms sweep 1k=${stallSmall.sweep.toFixed(1)} large=${stallLarge.sweep.toFixed(1)}`);
    console.log(`max_stall_ms samples+scrapes 1k=${stallSmall.samplers.toFixed(1)} large=${stallLarge.samplers.toFixed(1)}`);
    const lastSweep = services[1]!.service.ops.sweeper.lastRun;
    console.log(`sweep large: ${JSON.stringify(lastSweep)}`);

    console.log(`load average at end: ${loadAverages()}`);
    console.log(`claim_ratio_1m=${ratio(claimLarge, claimSmall)}`);
    console.log(`submit_ratio_1m=${ratio(submitSmall, submitLarge)}`);
    console.log(`health_ratio_1m=${worstReadRatio.toFixed(2)}`);
    console.log(`max_stall_ms_1m=${Math.max(stallLarge.sweep, stallLarge.samplers).toFixed(1)}`);
  } finally {
    for (const service of running) await service.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
