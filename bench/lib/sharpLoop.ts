import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import sharp from 'sharp';
import type { Config } from '../../src/config.js';
import { exitOf } from './childService.js';
import { compileForNode } from './compile.js';
import { sharedPhotos } from './photos.js';

/**
 * The sharp baselines of the image benchmarks: bench/plainSharp.ts, a
 * process that loads nothing but sharp, converting one image file to WebP
 * files with the service's pipeline and values, started the way a baseline
 * asks (sharp's settings, environment, node flags).
 */

/** The shared 1920x1080 photo, in the folder `sharedPhotos` finds. */
const FIXTURE = 'flowers.jpeg';

/**
 * What a plain baseline's process must not inherit from the shell that runs
 * the bench: allocator choices (glibc's tunables and MALLOC_* variables too),
 * libuv's pool size and node flags. Plain means the machine's defaults.
 */
const TUNING_VARIABLES = /^(MALLOC_ARENA_MAX|LD_PRELOAD|UV_THREADPOOL_SIZE|NODE_OPTIONS|GLIBC_TUNABLES|MALLOC_\w+)$/;

/** The real-size image: the shared 1920x1080 photo, or one made like it in `scratch` (never copied into the repository). */
export async function realSizeImage(root: string, scratch: string): Promise<string> {
  const fixture = path.join(sharedPhotos(root), FIXTURE);
  if (fs.existsSync(fixture)) return fixture;
  const file = path.join(scratch, 'generated-1920x1080.jpg');
  const noise = sharp({ create: { width: 1920, height: 1080, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 30 } } });
  const gradient = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="1920" height="1080"><linearGradient id="g"><stop offset="0" stop-color="#1d4e89"/><stop offset="1" stop-color="#f2a541"/></linearGradient><rect width="1920" height="1080" fill="url(#g)" opacity="0.7"/></svg>`,
  );
  await noise.composite([{ input: gradient }]).jpeg({ quality: 85 }).toFile(file);
  return file;
}

/** How a sharp baseline is started: sharp's settings, its process's environment and node flags. */
export interface Baseline {
  readonly settings: 'plain' | 'tuned';
  readonly env: NodeJS.ProcessEnv;
  readonly nodeFlags: readonly string[];
}

/**
 * Sharp as it comes (its default threads per image and operation cache) in
 * the machine's default environment: nothing the service chose.
 */
export function plainBaseline(): Baseline {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !TUNING_VARIABLES.test(name)));
  return { settings: 'plain', env, nodeFlags: [] };
}

/** What bench/plainSharp.ts reports for one measured segment (its CPU time is read from /proc by the bench). */
export interface SegmentReport {
  readonly seconds: number;
}

/** What bench/plainSharp.ts reports when it ends. */
export interface SharpLoopReport {
  readonly maxHeapTotalBytes: number;
  /** sharp's settings in effect: libvips threads per image, operation cache limits. */
  readonly threadsPerImage: number;
  readonly cacheMiB: number;
  readonly cacheFiles: number;
}

export interface SharpLoop {
  readonly process: ChildProcess;
  /** Settles once its warm-up is done; rejects if it ends first. */
  readonly ready: Promise<void>;
  /** Runs one measured segment of `count` conversions; one at a time. */
  segment(count: number): Promise<SegmentReport>;
  /** Ends it and answers its report, once it has exited 0. Its process is killed and its output folder removed whether or not it succeeds. */
  finish(): Promise<SharpLoopReport>;
}

export interface SharpLoopOptions {
  readonly root: string;
  readonly baseline: Baseline;
  /** The service's configuration: conversions in flight, WebP quality and effort, pixel limit. */
  readonly config: Config;
  readonly input: string;
  /** A folder for its output files, removed when it ends. */
  readonly out: string;
  /** Conversions run, unmeasured, before it is ready. */
  readonly warmUp: number;
}

/**
 * Starts a sharp baseline in its own process, compiled and run under node (no
 * TypeScript loader), doing the service's conversion with the service's
 * values: CONVERT_CONCURRENCY in flight, WebP quality and effort, pixel limit.
 * It warms up, then converts only when a segment asks it to.
 */
export function startSharpLoop(options: SharpLoopOptions): SharpLoop {
  const { root, baseline, config } = options;
  const entry = compileForNode(root, 'bench/plainSharp.ts');
  const service = {
    '--in-flight': config.convertConcurrency,
    '--quality': config.webpQuality,
    '--effort': config.webpEffort,
    '--max-pixels': config.maxInputPixels,
  };
  const args = [
    ...baseline.nodeFlags,
    entry,
    ...['--input', options.input, '--out', options.out, '--warmup', String(options.warmUp), '--settings', baseline.settings],
    ...Object.entries(service).flatMap(([name, value]) => [name, String(value)]),
  ];
  const child = spawn(process.execPath, args, { cwd: root, env: baseline.env, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = exitOf(child);
  if (child.stdin === null || child.stdout === null) throw new Error(`${baseline.settings} sharp has no stdin or stdout`);
  const stdin = child.stdin;
  // A write to a process that has died fails with EPIPE; `next` reports that end.
  stdin.on('error', () => undefined);
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();

  /** The next message it prints, which must be `msg`. */
  async function next<T>(msg: string): Promise<T> {
    const line = await lines.next();
    if (line.done === true) throw new Error(`${baseline.settings} sharp ended (exit ${(await exited).code}) before its ${msg} message`);
    const message = JSON.parse(line.value) as { msg: string } & T;
    if (message.msg !== msg) throw new Error(`${baseline.settings} sharp said ${line.value} where ${msg} was due`);
    return message;
  }

  return {
    process: child,
    ready: next<unknown>('ready').then(() => undefined),
    segment(count) {
      stdin.write(`${count}\n`);
      return next<SegmentReport>('segment');
    },
    async finish() {
      try {
        stdin.end();
        const report = await next<SharpLoopReport>('done');
        const { code } = await exited;
        if (code !== 0) throw new Error(`${baseline.settings} sharp exited with ${code}`);
        return report;
      } finally {
        child.kill('SIGKILL');
        // Its thousands of output files are not needed once it is measured.
        fs.rmSync(options.out, { recursive: true, force: true });
      }
    },
  };
}
