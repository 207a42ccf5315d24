import { describe, expect, it } from 'vitest';
import { HeapAllocationCounter } from '../src/ops/heapAllocation.js';
import { createRuntimeMonitor } from '../src/ops/runtimeMonitor.js';

describe('heap allocation counter', () => {
  it('adds what the heap grew between collections to what was in use at start', () => {
    const counter = new HeapAllocationCounter(1_000);
    expect(counter.total(1_500)).toBe(1_500);
    // 1000 → 4000 allocated 3000, GC → 1200; 1200 → 5200 allocated 4000, GC → 900.
    counter.addCollections([
      { usedBefore: 4_000, usedAfter: 1_200 },
      { usedBefore: 5_200, usedAfter: 900 },
    ]);
    expect(counter.total(900)).toBe(1_000 + 3_000 + 4_000);
    expect(counter.total(2_900)).toBe(1_000 + 3_000 + 4_000 + 2_000);
  });

  it('never counts a shrinking heap as negative allocation', () => {
    const counter = new HeapAllocationCounter(1_000);
    counter.addCollections([{ usedBefore: 800, usedAfter: 700 }]);
    expect(counter.total(600)).toBe(1_000);
  });
});

describe('runtime monitor', () => {
  it('counts collections and the bytes allocated on the V8 heap while it runs', async () => {
    const monitor = createRuntimeMonitor();
    monitor.start();
    try {
      const before = monitor.heapAllocatedBytes();
      const gcBefore = monitor.gcCount();
      // 100 000 arrays of 128 small integers: 8 bytes a slot, so at least 102.4 MB, nearly all garbage at once.
      const live = new Array<number[]>(16);
      for (let i = 0; i < 100_000; i += 1) live[i % 16] = new Array<number>(128).fill(i);
      await new Promise((resolve) => setTimeout(resolve, 20)); // GC entries are delivered asynchronously
      const allocated = monitor.heapAllocatedBytes() - before;

      expect(live[15]).toHaveLength(128);
      expect(allocated).toBeGreaterThan(102.4e6);
      expect(allocated).toBeLessThan(150e6);
      expect(monitor.gcCount()).toBeGreaterThan(gcBefore);
      expect(monitor.heapAllocatedBytes()).toBeGreaterThanOrEqual(process.memoryUsage().heapUsed * 0.5);
    } finally {
      monitor.stop();
    }
  });

  it('measures event-loop delay while work is in flight, and only then', async () => {
    const monitor = createRuntimeMonitor();
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const holdLoop = (ms: number): void => {
      const until = Date.now() + ms;
      while (Date.now() < until); // the loop is held: nothing else runs
    };
    monitor.start();
    try {
      // Idle: nothing samples, so a held loop goes unseen (and no timer wakes an idle process).
      await pause(60);
      holdLoop(100);
      await pause(60);
      expect(monitor.eventLoopDelay()).toMatchObject({ maxMs: 0, p50Ms: 0 });

      await monitor.during(async () => {
        await pause(60);
        holdLoop(100);
        await pause(60);
      });
      const delay = monitor.eventLoopDelay();
      expect(delay.maxMs).toBeGreaterThanOrEqual(70);
      expect(delay.p50Ms).toBeLessThan(20); // an idle loop is not late
      expect(delay.p50Ms).toBeLessThanOrEqual(delay.p99Ms);

      // Idle again: the figures stay those measured during the work.
      holdLoop(200);
      await pause(60);
      expect(monitor.eventLoopDelay()).toEqual(delay);
    } finally {
      monitor.stop();
    }
  });
});
