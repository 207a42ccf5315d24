/**
 * Native memory of conversions under load, for choosing the allocator and
 * sharp's settings (docs/memory.md). Converts a photo to WebP file to file
 * with the service's own converter, IN_FLIGHT at a time, and prints peak and
 * settled RSS and throughput as one JSON line. Run one configuration per
 * process, since allocator and thread settings are process-wide:
 *
 *   UV_THREADPOOL_SIZE=9 [MALLOC_ARENA_MAX=2 | LD_PRELOAD=libjemalloc.so.2] \
 *     SHARP_CONCURRENCY=1 PHOTO=../shared/fixtures/photos/flowers.jpeg COUNT=200 npx tsx bench/allocator.ts
 *
 * Settings (environment): PHOTO, COUNT (200), IN_FLIGHT (5), SHARP_CONCURRENCY
 * (the service's own by default), SHARP_CACHE=on for sharp's default cache,
 * WEBP_EFFORT (4).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { createConverter } from '../src/image/convert.js';
import { readHeader } from '../src/image/header.js';
import { configureSharp } from '../src/image/sharpSettings.js';
import { Semaphore } from '../src/queue/semaphore.js';

const env = process.env;
const photo = path.resolve(env.PHOTO ?? '../shared/fixtures/photos/flowers.jpeg');
const count = Number(env.COUNT ?? 200);
const inFlight = Number(env.IN_FLIGHT ?? 5);
const webpEffort = Number(env.WEBP_EFFORT ?? 4);
const SAMPLE_MS = 50;
/** How long the process sits idle after the run before "settled" RSS is read. */
const SETTLE_MS = 2_000;

configureSharp();
if (env.SHARP_CONCURRENCY !== undefined) sharp.concurrency(Number(env.SHARP_CONCURRENCY));
if (env.SHARP_CACHE === 'on') sharp.cache({ memory: 50, files: 20, items: 100 });

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-allocator-'));
// Read once, as a submission does.
const header = await readHeader(photo);
const converter = createConverter({ webpQuality: 80, webpEffort, maxInputPixels: 50_000_000, conversions: new Semaphore(inFlight) });
const mb = (bytes: number): number => Math.round(bytes / 1_048_576);

let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, SAMPLE_MS);

const baseline = process.memoryUsage.rss();
const started = performance.now();
let next = 0;
let outputBytes = 0;
const signal = new AbortController().signal;
await Promise.all(
  Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const n = next++;
      const output = path.join(work, `${n}.webp`);
      const result = await converter.convert({ input: photo, header, output, index: n, options: { format: 'webp' }, signal, deadline: Date.now() + 600_000 });
      outputBytes = result.bytes;
      fs.rmSync(output);
    }
  }),
);
const seconds = (performance.now() - started) / 1_000;
const afterRun = process.memoryUsage.rss();
await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
clearInterval(sampler);
fs.rmSync(work, { recursive: true, force: true });

console.log(
  JSON.stringify({
    photo: path.basename(photo),
    allocator: env.LD_PRELOAD?.includes('jemalloc') ? 'jemalloc' : env.MALLOC_ARENA_MAX ? `glibc MALLOC_ARENA_MAX=${env.MALLOC_ARENA_MAX}` : 'glibc default',
    sharpConcurrency: sharp.concurrency(),
    cache: env.SHARP_CACHE === 'on' ? 'on' : 'off',
    webpEffort,
    inFlight,
    uvThreadpool: env.UV_THREADPOOL_SIZE ?? '4 (default)',
    count,
    /** Other work on the machine skews throughput: the 1-minute load average when the run ended. */
    loadAverage: Number(os.loadavg()[0]?.toFixed(2)),
    imagesPerSecond: Number((count / seconds).toFixed(2)),
    outputKB: Math.round(outputBytes / 1_024),
    rssMB: { baseline: mb(baseline), peak: mb(peak), afterRun: mb(afterRun), settled: mb(process.memoryUsage.rss()) },
  }),
);
