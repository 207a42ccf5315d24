/**
 * What every side of `npm run bench:queue` shares: the figures a side
 * answers, and the countdown that ends its timed processing span.
 */

export interface Throughput {
  readonly enqueuePerSec: number;
  readonly processedPerSec: number;
}

/**
 * A queue on PostgreSQL, run on a fresh database made for the run
 * (`databaseUrl`, dropped afterwards): `jobs` no-op jobs enqueued one by
 * one, each in its own transaction, then processed with `concurrency` in
 * flight, timed until the last one is recorded as done.
 */
export interface PostgresQueueSide {
  readonly name: string;
  /** A side of the service's own queue: compared with every side that is not (`ratio_vs_<name>=`). */
  readonly ours: boolean;
  run(databaseUrl: string, jobs: number, concurrency: number): Promise<Throughput>;
}

/** A side that finishes no job for this long is reported as stuck instead of hanging the run. */
const STALL_MS = 30_000;

export const perSec = (count: number, startedAt: number): number => count / ((performance.now() - startedAt) / 1_000);

/** `done` resolves on the `total`-th call of `tick`, or rejects when no tick came for STALL_MS. */
export function countdown(total: number): { tick: () => void; done: Promise<void> } {
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

export function expectAllDone(side: string, done: number, jobs: number): void {
  if (done !== jobs) throw new Error(`${side}: ${done} of ${jobs} jobs are done in the database`);
}
