/**
 * The baselines of `bench/soak.ts` and `bench/cpuPerImage.ts`: sharp
 * converting one image file to WebP files, with `--in-flight` conversions at
 * once (CONVERT_CONCURRENCY), in a process of its own that loads nothing but
 * sharp. It runs the same sharp pipeline as src/image/convert.ts (fail on
 * errors, pixel limit, auto-orient, sRGB, WebP quality and effort, file to
 * file); the benches pass the service's values on the command line.
 *
 * `--settings` says which sharp it is:
 * - `plain` (the baseline of `ratio_speed` and `ratio_peak_rss`): sharp as it
 *   comes — its own default threads per image and operation cache. What the
 *   process is started with (the default allocator and thread pool, no V8
 *   flags) is the bench's side of it.
 * - `tuned`: sharp given the service's own settings (`configureSharp()`:
 *   one thread per image, cache off); bench/soak.ts starts it with the
 *   environment and node flags scripts/start.sh gave the service, so only the
 *   service's own work differs.
 *
 * Run compiled under plain node (bench/lib/sharpLoop.ts does that). It
 * converts `--warmup` images, prints `{"msg":"ready"}`, then reads its stdin:
 * each line is a count, the conversions of one measured segment, answered
 * when they are done by `{"msg":"segment","images":N,"seconds":S}` (the
 * bench reads its CPU time from /proc). Between segments it idles, so a bench
 * can take turns with other processes on the same cores. When stdin ends it
 * prints `{"msg":"done","maxHeapTotalBytes":H,"threadsPerImage":T,"cacheMiB":M,"cacheFiles":F}`
 * (H: the V8 heap's largest size, sampled every 250 ms; T, M, F: sharp's
 * settings in effect) and exits.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { configureSharp } from '../src/image/sharpSettings.js';

const { values } = parseArgs({
  options: {
    input: { type: 'string' },
    out: { type: 'string' },
    warmup: { type: 'string', default: '10' },
    'in-flight': { type: 'string' },
    quality: { type: 'string' },
    effort: { type: 'string' },
    'max-pixels': { type: 'string' },
    settings: { type: 'string', default: 'plain' },
  },
});

/** A required integer option: the service's values come from bench/soak.ts, never from defaults here. */
function integer(name: keyof typeof values, min = 1): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer of at least ${min} (got ${String(values[name])})`);
  return value;
}

if (values.input === undefined || values.out === undefined || (values.settings !== 'plain' && values.settings !== 'tuned')) {
  throw new Error('usage: plainSharp --input <image> --out <folder> --in-flight N --quality Q --effort E --max-pixels P [--settings plain|tuned] [--warmup N]');
}
const input = values.input;
const out = values.out;
const inFlight = integer('in-flight');
const quality = integer('quality');
const effort = integer('effort', 0);
const maxPixels = integer('max-pixels');

// Plain sharp keeps whatever sharp chose at import; tuned sharp is set up as the service sets itself up.
if (values.settings === 'tuned') configureSharp();
fs.mkdirSync(out, { recursive: true });

function convert(index: number): Promise<unknown> {
  return sharp(input, { failOn: 'error', limitInputPixels: maxPixels })
    .autoOrient()
    .toColourspace('srgb')
    .webp({ quality, effort })
    .toFile(path.join(out, `${index}.webp`));
}

/** Converts `count` times, `inFlight` at a time, naming the files from `first` on. */
async function run(count: number, first: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        next += 1;
        await convert(first + next);
      }
    }),
  );
}

let maxHeapTotalBytes = 0;
const heapSampler = setInterval(() => {
  maxHeapTotalBytes = Math.max(maxHeapTotalBytes, process.memoryUsage().heapTotal);
}, 250);

const warmUp = integer('warmup', 0);
await run(warmUp, 0);
console.log(JSON.stringify({ msg: 'ready' }));

let converted = warmUp;
for await (const line of readline.createInterface({ input: process.stdin })) {
  const count = Number(line);
  if (!Number.isInteger(count) || count < 1) throw new Error(`a segment is a positive count of conversions (got ${JSON.stringify(line)})`);
  const started = performance.now();
  await run(count, converted);
  converted += count;
  console.log(JSON.stringify({ msg: 'segment', images: count, seconds: (performance.now() - started) / 1_000 }));
}

clearInterval(heapSampler);
const cache = sharp.cache();
console.log(JSON.stringify({ msg: 'done', maxHeapTotalBytes, threadsPerImage: sharp.concurrency(), cacheMiB: cache.memory.max, cacheFiles: cache.files.max }));
