import type { Logger } from 'pino';
import type { JobStore } from '../jobs/store.js';
import { SampleRing } from './sampleRing.js';

/** One point of the dashboard's chart. */
export interface MemorySample {
  /** Epoch ms. */
  readonly at: number;
  readonly rssBytes: number;
  /** V8 heap in use. */
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Memory of C++ objects bound to JS, Buffers included (Node's `external`). */
  readonly externalBytes: number;
  /** Queue depth: jobs waiting, and jobs running. */
  readonly queued: number;
  readonly running: number;
}

export interface MemorySamplerOptions {
  readonly store: JobStore;
  readonly log: Logger;
  /** One sample every 10 s and 360 slots: the last hour. */
  readonly intervalMs?: number;
  readonly capacity?: number;
  readonly now?: () => number;
}

export type MemorySampler = ReturnType<typeof createMemorySampler>;

/** Samples memory and queue depth on an unref'd timer into a fixed-size ring. */
export function createMemorySampler(options: MemorySamplerOptions) {
  const intervalMs = options.intervalMs ?? 10_000;
  const ring = new SampleRing<MemorySample>(options.capacity ?? 360);
  const now = options.now ?? Date.now;
  let timer: NodeJS.Timeout | null = null;

  async function take(): Promise<void> {
    try {
      const counts = await options.store.countByStatus();
      const usage = process.memoryUsage();
      ring.push({
        at: now(),
        rssBytes: usage.rss,
        heapUsedBytes: usage.heapUsed,
        heapTotalBytes: usage.heapTotal,
        externalBytes: usage.external,
        queued: counts.queued,
        running: counts.running,
      });
    } catch (error) {
      // A busy database costs one point of the chart, nothing more.
      options.log.warn({ err: error }, 'could not take a memory sample');
    }
  }

  return {
    intervalMs,
    capacity: ring.capacity,

    /** The samples, oldest first. */
    samples: (): MemorySample[] => ring.toArray(),

    /** Takes one sample now; the timer calls this every interval. */
    sample: take,

    /**
     * Takes a first sample at once, then one per interval; the timer never
     * keeps the process alive. Resolves once the first sample is in.
     */
    async start(): Promise<void> {
      if (timer !== null) return;
      timer = setInterval(() => void take(), intervalMs);
      timer.unref();
      await take();
    },

    stop(): void {
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
  };
}
