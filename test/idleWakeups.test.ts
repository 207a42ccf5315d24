/**
 * An idle service sleeps: with no job and no request, its main thread is
 * woken only by its few slow timers (the memory sampler every 10 s, the
 * lease check every 30 s, the HTTP server's timeout check every 30 s),
 * with its queue in SQLite or in PostgreSQL. Counted by the kernel, on a
 * real service process started as `npm start` starts it.
 */
import fs from 'node:fs';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUpServiceProcesses, newDataDir, startServiceProcess } from './support/childService.js';
import { withoutInstance } from './support/metrics.js';
import { postgresAvailable, testPostgres } from './support/postgres.js';
import { delay, waitFor } from './support/wait.js';

afterEach(cleanUpServiceProcesses);

const onPostgres = await postgresAvailable();

/**
 * Times a process's main thread has gone to sleep so far: each is one wake-up
 * afterwards. Preemptions (nonvoluntary switches) are not counted: they cut a
 * wake-up's work in pieces on a busy machine, but add no wake-up.
 */
function mainThreadSleeps(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1]);
}

/**
 * Waits until the start's own work is done: V8's memory reducer collects
 * garbage after a start, up to three times 8 s apart (a dozen to a few dozen
 * sleeps each, its helper threads), then falls silent. Counted second by
 * second, the last of them came 16 to 26 s after the start, on SQLite as on
 * PostgreSQL. Done is past 30 s, and five seconds with at most two wake-ups.
 */
async function settled(pid: number): Promise<void> {
  await delay(30_000);
  for (let tries = 0; tries < 12; tries += 1) {
    const before = mainThreadSleeps(pid);
    await delay(5_000);
    if (mainThreadSleeps(pid) - before <= 2) return;
  }
}

const IDLE_MS = 20_000;

/**
 * On PostgreSQL each read of the database is a round trip whose answer wakes
 * the thread again: the sampler's read every 10 s costs two wake-ups, not
 * one, and the idle lease check (a transaction: BEGIN, its read, COMMIT)
 * four every 30 s. About 8 in 20 s were counted; SQLite's reads are
 * synchronous, and wake nothing.
 */
describe.each([
  { backend: 'SQLite', skip: false, maxWakeups: 10, database: async (): Promise<Record<string, string>> => ({}) },
  {
    backend: 'PostgreSQL', skip: !onPostgres, maxWakeups: 16,
    database: async (): Promise<Record<string, string>> => ({ DATABASE_URL: await testPostgres() }),
  },
])('an idle service on $backend', ({ skip, maxWakeups, database }) => {
  it.skipIf(skip)(`wakes its main thread at most ${maxWakeups} times in ${IDLE_MS / 1000} s, and measures event-loop delay while it works`, async () => {
    // A sweep is work (a few dozen wake-ups, every 5 minutes by default): none falls in this test's window.
    const sweepCron = `${(new Date().getMinutes() + 30) % 60} * * * *`;
    const service = await startServiceProcess(newDataDir(), { SWEEP_CRON: sweepCron, ...(await database()) });
    await settled(service.pid);

    const before = mainThreadSleeps(service.pid);
    await delay(IDLE_MS);
    const wakeups = mainThreadSleeps(service.pid) - before;
    expect(wakeups, `${wakeups} wake-ups while idle:\n${service.logTail()}`).toBeLessThanOrEqual(maxWakeups);

    // Work: the event-loop delay figures are measured while it runs, and reported after.
    const image = await sharp({ create: { width: 800, height: 600, channels: 3, background: '#456' } }).jpeg().toBuffer();
    const submitted = await fetch(`${service.url}/jobs`, { method: 'POST', body: image, headers: { 'content-type': 'image/jpeg' } });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: number };
    await waitFor(async () => ((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string }).status === 'succeeded');
    const metrics = withoutInstance(await (await fetch(`${service.url}/metrics`)).text());
    for (const figure of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
      expect(metrics).toMatch(new RegExp(`^nodejs_eventloop_lag_${figure}_seconds \\d+(\\.\\d+)?(e-\\d+)?$`, 'm'));
    }
    const stats = (await (await fetch(`${service.url}/debug/memory-stats`)).json()) as { node: { event_loop_delay_ms: Record<string, number> } };
    expect(Object.keys(stats.node.event_loop_delay_ms).sort()).toEqual(['max', 'mean', 'p50', 'p90', 'p99']);
  }, 140_000);
});
