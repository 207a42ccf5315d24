import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { HeapAllocationCounter } from './heapAllocation.js';

/**
 * What V8 and libuv tell about the process beyond `process.memoryUsage()`:
 * garbage collections, bytes allocated on the V8 heap, and event-loop delay,
 * all counted from `start()`. No work while idle: the collections are
 * observed, and the delay is sampled by a timer armed only while work is in
 * flight (`during`), so an idle service is never woken by it.
 */
export interface RuntimeMonitor {
  start(): void;
  stop(): void;
  /**
   * Runs `work`, sampling event-loop delay until it settles (and while any
   * other work is in flight): requests and attempts run through here.
   */
  during<T>(work: () => Promise<T>): Promise<T>;
  /** Garbage collections (of every kind) since start. */
  gcCount(): number;
  /** Bytes allocated on the V8 heap since start (see `HeapAllocationCounter`). */
  heapAllocatedBytes(): number;
  /** Event-loop delay while there was work, since start, in milliseconds; zeros before the first measurement. */
  eventLoopDelay(): EventLoopDelay;
}

export interface EventLoopDelay {
  readonly minMs: number;
  readonly meanMs: number;
  readonly stddevMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * The GC profiler holds its records until stopped; harvesting at most this
 * often (on the next collection) keeps them few without a timer of its own.
 */
const HARVEST_INTERVAL_MS = 1_000;
/** Sampling period of the event-loop delay histogram, while there is work. */
const LOOP_DELAY_RESOLUTION_MS = 20;

const usedHeap = (): number => v8.getHeapStatistics().used_heap_size;
/** The histogram records each timer interval whole; the delay is what exceeds the period. */
const delayMs = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - LOOP_DELAY_RESOLUTION_MS) * 100) / 100);

export function createRuntimeMonitor(): RuntimeMonitor {
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  const profiler = new v8.GCProfiler();
  let allocation = new HeapAllocationCounter(usedHeap());
  let collections = 0;
  let lastHarvest = 0;
  let running = false;
  /** Work in flight (`during`): the delay histogram samples while this is above zero. */
  let busy = 0;

  /** Moves the profiler's records into the counter and restarts it. */
  function harvest(): void {
    if (!running) return;
    const { statistics } = profiler.stop();
    profiler.start();
    lastHarvest = performance.now();
    allocation.addCollections(
      statistics.map((gc) => ({ usedBefore: gc.beforeGC.heapStatistics.usedHeapSize, usedAfter: gc.afterGC.heapStatistics.usedHeapSize })),
    );
  }

  const gcObserver = new PerformanceObserver((list) => {
    collections += list.getEntries().length;
    if (performance.now() - lastHarvest >= HARVEST_INTERVAL_MS) harvest();
  });

  return {
    start(): void {
      if (running) return;
      running = true;
      collections = 0;
      allocation = new HeapAllocationCounter(usedHeap());
      profiler.start();
      lastHarvest = performance.now();
      gcObserver.observe({ entryTypes: ['gc'] });
      if (busy > 0) loopDelay.enable();
    },

    stop(): void {
      if (!running) return;
      harvest();
      running = false;
      profiler.stop();
      gcObserver.disconnect();
      loopDelay.disable();
    },

    async during<T>(work: () => Promise<T>): Promise<T> {
      busy += 1;
      if (busy === 1 && running) loopDelay.enable();
      try {
        return await work();
      } finally {
        busy -= 1;
        if (busy === 0) loopDelay.disable();
      }
    },

    gcCount: () => collections,

    heapAllocatedBytes(): number {
      harvest();
      return allocation.total(usedHeap());
    },

    eventLoopDelay(): EventLoopDelay {
      if (loopDelay.count === 0) return { minMs: 0, meanMs: 0, stddevMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 };
      return {
        minMs: delayMs(loopDelay.min),
        meanMs: delayMs(loopDelay.mean),
        // A spread: the period does not shift it.
        stddevMs: Math.round(loopDelay.stddev / 1e4) / 100,
        p50Ms: delayMs(loopDelay.percentile(50)),
        p90Ms: delayMs(loopDelay.percentile(90)),
        p99Ms: delayMs(loopDelay.percentile(99)),
        maxMs: delayMs(loopDelay.max),
      };
    },
  };
}
