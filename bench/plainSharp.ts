/**
 * The baseline of `bench/soak.ts`: plain sharp converting one image file to
 * WebP files, `--count` times, with CONVERT_CONCURRENCY conversions in flight,
 * in a process of its own. It takes the service's settings from the same
 * place the service does (`loadConfig` over the same environment, and
 * `configureSharp`) and runs the same sharp pipeline as src/image/convert.ts
 * (fail on errors, pixel limit, auto-orient, sRGB, WebP quality and effort),
 * so that what differs from the service is the service itself.
 *
 * Run compiled under plain node (bench/soak.ts does that); prints one JSON line:
 * `{"msg":"done","images":N,"seconds":S,"cpuSeconds":C,"maxHeapTotalBytes":H}` (C: CPU time of
 * all threads during the run; H: the V8 heap's largest size, sampled every 250 ms).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { configureSharp } from '../src/image/sharpSettings.js';

const { values } = parseArgs({
  options: {
    input: { type: 'string' },
    out: { type: 'string' },
    count: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '10' },
  },
});
if (values.input === undefined || values.out === undefined) throw new Error('usage: plainSharp --input <image> --out <folder> [--count N] [--warmup N]');
const input = values.input;
const out = values.out;

const config = loadConfig();
configureSharp();
fs.mkdirSync(out, { recursive: true });

function convert(index: number): Promise<unknown> {
  return sharp(input, { failOn: 'error', limitInputPixels: config.maxInputPixels })
    .autoOrient()
    .toColourspace('srgb')
    .webp({ quality: config.webpQuality, effort: config.webpEffort })
    .toFile(path.join(out, `${index}.webp`));
}

/** Converts `count` times, `config.convertConcurrency` at a time. */
async function run(count: number, first: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: config.convertConcurrency }, async () => {
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

const count = Number(values.count);
await run(Number(values.warmup), count);
const started = performance.now();
const cpuBefore = process.cpuUsage();
await run(count, 0);
const cpu = process.cpuUsage(cpuBefore);
clearInterval(heapSampler);
const seconds = (performance.now() - started) / 1_000;
console.log(JSON.stringify({ msg: 'done', images: count, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxHeapTotalBytes }));
