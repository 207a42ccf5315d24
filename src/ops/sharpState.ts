import sharp, { type CacheResult, type SharpCounters } from 'sharp';

/** What sharp (libvips) holds natively, which the V8 heap never shows. */
export interface SharpState {
  /**
   * `memory`: all memory libvips tracks (current and high-water mark, in MiB as
   * libvips rounds it) against the cache's limit; `files` and `items`: what
   * the operation cache holds against its limits.
   */
  readonly cache: CacheResult;
  /** Tasks waiting for a libuv worker thread, and tasks being processed. */
  readonly counters: SharpCounters;
  /** libvips threads per image. */
  readonly concurrency: number;
}

/** Reads sharp's state. In sharp 0.35, `cache()` and `concurrency()` without arguments only read. */
export function sharpState(): SharpState {
  return { cache: sharp.cache(), counters: sharp.counters(), concurrency: sharp.concurrency() };
}

/**
 * Drops everything libvips' operation cache holds, then puts its limits back
 * as they were: libvips trims the cache whenever its limits change, so this
 * frees cached operations without changing the configured policy.
 */
export function releaseSharpCache(): { before: CacheResult; after: CacheResult } {
  const before = sharp.cache();
  sharp.cache(false);
  const after = sharp.cache({ memory: before.memory.max, files: before.files.max, items: before.items.max });
  return { before, after };
}
