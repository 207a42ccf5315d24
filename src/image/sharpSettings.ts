import sharp from 'sharp';

/**
 * libvips threads per image. Conversions already run CONVERT_CONCURRENCY
 * (default: one per core) images side by side, so more threads per image
 * add memory (per-thread buffers) without adding throughput under load.
 * Measured in docs/memory.md.
 */
const THREADS_PER_IMAGE = 1;

/**
 * The libvips loaders of the formats the service accepts (see `probeImage`).
 * Every other loader is blocked: SVG, PDF, the raw and scientific formats
 * never reach libvips from untrusted bytes, and finding a file's loader asks
 * six candidates instead of every loader the build has.
 */
const ACCEPTED_LOADERS = ['VipsForeignLoadJpeg', 'VipsForeignLoadPng', 'VipsForeignLoadWebp', 'VipsForeignLoadNsgif', 'VipsForeignLoadTiff', 'VipsForeignLoadHeif'];

export interface SharpSettings {
  readonly threadsPerImage: number;
  readonly cache: false;
  readonly loaders: readonly string[];
}

/**
 * Applies sharp's process-wide settings for a long-running server (measured
 * and explained in docs/memory.md) and returns them for the start-up log.
 *
 * - Cache off: libvips' operation cache keeps up to 20 input files open and
 *   50 MB of pixels for reuse that never comes here (every image is new). An
 *   open file also keeps a deleted temp file's disk space in use.
 * - Concurrency set explicitly, never left to sharp's import-time guess
 *   (1 on glibc without jemalloc unless MALLOC_ARENA_MAX is set, otherwise the
 *   core count): it must not depend on how the process was started.
 * - Only the accepted formats' loaders (`ACCEPTED_LOADERS`).
 */
export function configureSharp(): SharpSettings {
  sharp.cache(false);
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: ACCEPTED_LOADERS });
  return { threadsPerImage: sharp.concurrency(THREADS_PER_IMAGE), cache: false, loaders: ACCEPTED_LOADERS };
}
