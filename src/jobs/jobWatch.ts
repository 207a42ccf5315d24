/**
 * Wakes requests that wait for a job to change (`GET /jobs/{id}` with
 * `Prefer: wait=N`, through `Jobs.waitForEnd`): the store's `ended` signals,
 * from this instance or another sharing the store, report each job's end.
 */
export interface JobWatch {
  /**
   * Resolves when `jobId` is reported changed, when `ms` have passed or when
   * `signal` aborts; never rejects. Nothing of
   * the wait is kept after it resolves.
   */
  wait(jobId: number, ms: number, signal: AbortSignal): Promise<void>;
  /** Ends every wait on `jobId` now. */
  changed(jobId: number): void;
  /** Waits in progress. */
  readonly size: number;
}

export function createJobWatch(): JobWatch {
  const waiters = new Map<number, Set<() => void>>();
  let size = 0;

  function wake(wakers: Iterable<() => void>): void {
    for (const resolve of [...wakers]) resolve();
  }

  return {
    wait(jobId, ms, signal) {
      return new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const ofJob = waiters.get(jobId) ?? new Set<() => void>();
        waiters.set(jobId, ofJob);
        let settled = false;
        const done = (): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          ofJob.delete(done);
          if (ofJob.size === 0 && waiters.get(jobId) === ofJob) waiters.delete(jobId);
          size -= 1;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        ofJob.add(done);
        size += 1;
      });
    },

    changed(jobId) {
      const ofJob = waiters.get(jobId);
      if (ofJob) wake(ofJob);
    },

    get size() {
      return size;
    },
  };
}
