import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import sharp from 'sharp';
import type { Config } from '../../src/config.js';
import { exitOf } from './childService.js';
import { compileForNode } from './compile.js';

/**
 * The sharp baselines of the image benchmarks: bench/plainSharp.ts, a
 * process that loads nothing but sharp, converting one image file to WebP
 * files with the service's pipeline and values, started the way a baseline
 * asks (sharp's settings, environment, node flags).
 */

const FIXTURE = '../shared/fixtures/photos/flowers.jpeg';

/**
 * What a plain baseline's process must not inherit from the shell that runs
 * the bench: allocator choices (glibc's tunables and MALLOC_* variables too),
 * libuv's pool size and node flags. Plain means the machine's defaults.
 */
const TUNING_VARIABLES = /^(MALLOC_ARENA_MAX|LD_PRELOAD|UV_THREADPOOL_SIZE|NODE_OPTIONS|GLIBC_TUNABLES|MALLOC_\w+)$/;

/** The real-size image: the shared 1920x1080 photo, or one made like it in `scratch` (never copied into the repository). */
export async function realSizeImage(root: string, scratch: string): Promise<string> {
  const fixture = path.resolve(root, FIXTURE);
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

/** What bench/plainSharp.ts reports at the end of its measured run. */
export interface SharpLoopReport {
  readonly seconds: number;
  /** CPU time of all its threads during the measured run, user and system. */
  readonly cpuSeconds: number;
  readonly maxHeapTotalBytes: number;
  /** sharp's settings in effect: libvips threads per image, operation cache limits. */
  readonly threadsPerImage: number;
  readonly cacheMiB: number;
  readonly cacheFiles: number;
}

export interface SharpLoop {
  readonly process: ChildProcess;
  /** Settles with the report once the process has exited 0; rejects otherwise. Its output folder is removed either way. */
  readonly done: Promise<SharpLoopReport>;
}

export interface SharpLoopOptions {
  readonly root: string;
  readonly baseline: Baseline;
  /** The service's configuration: conversions in flight, WebP quality and effort, pixel limit. */
  readonly config: Config;
  readonly input: string;
  /** A folder for its output files, removed when it ends. */
  readonly out: string;
  /** Conversions measured, after `warmUp` that are not. */
  readonly count: number;
  readonly warmUp: number;
}

/**
 * Starts a sharp baseline in its own process, compiled and run under node (no
 * TypeScript loader), doing the service's conversion with the service's
 * values: CONVERT_CONCURRENCY in flight, WebP quality and effort, pixel limit.
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
    ...['--input', options.input, '--out', options.out, '--count', String(options.count), '--warmup', String(options.warmUp), '--settings', baseline.settings],
    ...Object.entries(service).flatMap(([name, value]) => [name, String(value)]),
  ];
  const child = spawn(process.execPath, args, { cwd: root, env: baseline.env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = exitOf(child);
  const done = (async (): Promise<SharpLoopReport> => {
    try {
      if (child.stdout === null) throw new Error(`${baseline.settings} sharp has no stdout`);
      let report: SharpLoopReport | null = null;
      for await (const line of readline.createInterface({ input: child.stdout })) {
        const message = JSON.parse(line) as { msg: string } & SharpLoopReport;
        if (message.msg === 'done') report = message;
      }
      const { code } = await exited;
      if (code !== 0 || report === null) throw new Error(`${baseline.settings} sharp exited with ${code}`);
      return report;
    } finally {
      child.kill('SIGKILL');
      // Its thousands of output files are not needed once it is measured.
      fs.rmSync(options.out, { recursive: true, force: true });
    }
  })();
  return { process: child, done };
}
