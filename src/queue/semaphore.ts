/**
 * A counting semaphore: at most `limit` holders at once, waiters served in
 * arrival order. `acquire` resolves to a release function that is safe to
 * call more than once.
 */
export class Semaphore {
  #available: number;
  readonly #waiters: (() => void)[] = [];

  constructor(readonly limit: number) {
    this.#available = limit;
  }

  get inUse(): number {
    return this.limit - this.#available;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a unit if one is free right now; null otherwise. */
  tryAcquire(): (() => void) | null {
    if (this.#available === 0) return null;
    this.#available -= 1;
    return this.#releaser();
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const now = this.tryAcquire();
    if (now) return now;
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const at = this.#waiters.indexOf(grant);
        if (at !== -1) this.#waiters.splice(at, 1);
        reject(signal?.reason);
      };
      this.#waiters.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.#releaser();
  }

  /** Runs `task` while holding one unit. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await task();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      // A waiting task takes the unit over directly; otherwise it becomes free.
      if (next) next();
      else this.#available += 1;
    };
  }
}
