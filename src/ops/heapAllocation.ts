/** One garbage collection as V8's GC profiler reports it: bytes of heap in use before and after. */
export interface Collection {
  readonly usedBefore: number;
  readonly usedAfter: number;
}

/**
 * Bytes allocated on the V8 heap since a starting point, derived from GC
 * statistics: Node 20's V8 keeps no lifetime allocation counter, but heap in
 * use only grows by allocation and only shrinks by collection. So between the
 * end of one collection and the start of the next, the heap grew by exactly
 * what was allocated:
 *
 *   allocated = used at start + Σ (used before GC i − used after GC i−1) + (used now − used after the last GC)
 *
 * Heap in use at the starting point counts as allocated, so the total is
 * never below the heap in use (as Go's `TotalAlloc` is never below `Alloc`).
 * A collection the profiler did not see (one can fall in the microseconds it
 * is restarted) makes the figure a slight undercount, never an overcount.
 */
export class HeapAllocationCounter {
  /** Bytes allocated up to the end of the last collection seen. */
  private allocatedUntilLast: number;
  private usedAfterLast: number;

  constructor(usedAtStart: number) {
    this.allocatedUntilLast = usedAtStart;
    this.usedAfterLast = usedAtStart;
  }

  /** Adds collections in the order they happened. */
  addCollections(collections: readonly Collection[]): void {
    for (const { usedBefore, usedAfter } of collections) {
      this.allocatedUntilLast += Math.max(0, usedBefore - this.usedAfterLast);
      this.usedAfterLast = usedAfter;
    }
  }

  /** Everything allocated so far, given the heap in use now. */
  total(usedNow: number): number {
    return this.allocatedUntilLast + Math.max(0, usedNow - this.usedAfterLast);
  }
}
