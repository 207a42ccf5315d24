import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * A process's figures read from outside, from /proc (Linux): what the kernel
 * charges it, whatever the process itself believes.
 */

export interface RssSample {
  /** Milliseconds since the sampler's origin. */
  readonly ms: number;
  readonly rssBytes: number;
  /** Of which anonymous memory (heaps, the allocator's arenas, thread stacks)… */
  readonly anonBytes: number;
  /** …and pages of mapped files (the node binary, libvips and other shared libraries). */
  readonly fileBytes: number;
}

/** VmRSS, RssAnon and RssFile from /proc/<pid>/status; null once the process is gone. */
export function residentMemory(pid: number): Omit<RssSample, 'ms'> | null {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  const rssBytes = kib('VmRSS');
  return Number.isNaN(rssBytes) ? null : { rssBytes, anonBytes: kib('RssAnon'), fileBytes: kib('RssFile') };
}

/** The environment the process runs with, from /proc/<pid>/environ. */
export function environment(pid: number): Record<string, string> {
  const entries = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return Object.fromEntries(entries.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

/**
 * The options a node process was started with, from /proc/<pid>/cmdline: the
 * arguments between the executable and the script (`node --flag … main.js`;
 * flags given as `--name=value`, as scripts/start.sh writes them).
 */
export function nodeFlags(pid: number): string[] {
  const [, ...args] = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const script = args.findIndex((arg) => !arg.startsWith('-'));
  return script === -1 ? args : args.slice(0, script);
}

let clockTicks: number | undefined;

/** User and system CPU time, in seconds. */
export interface CpuTime {
  readonly user: number;
  readonly system: number;
}

/** A process's or thread's name and CPU time from its stat file; null once it is gone. */
function statCpu(file: string): (CpuTime & { readonly name: string }) | null {
  let stat: string;
  try {
    stat = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  // The name (field 2) may hold spaces and parentheses; utime and stime are fields 14 and 15.
  const end = stat.lastIndexOf(')');
  const fields = stat.slice(end + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, end), user: Number(fields[11]) / clockTicks, system: Number(fields[12]) / clockTicks };
}

/**
 * CPU time the process has used so far, user and system, in seconds: all its
 * threads (/proc/<pid>/stat), or only its main thread, the one running
 * JavaScript (/proc/<pid>/task/<pid>/stat).
 */
export function cpuSeconds(pid: number, only: 'all threads' | 'main thread' = 'all threads'): number {
  const cpu = statCpu(only === 'main thread' ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`);
  if (cpu === null) throw new Error(`process ${pid} is gone`);
  return cpu.user + cpu.system;
}

/**
 * A process's CPU time so far by kind of thread: its main thread (JavaScript,
 * the event loop, SQLite), libvips' workers (decoding, resizing, encoding) and
 * the rest (libuv's pool: file calls and sharp's calls into libvips; V8's
 * helper threads; and any thread that has ended, whose time only the
 * process's total keeps).
 */
export interface ThreadCpu {
  readonly main: CpuTime;
  readonly libvips: CpuTime;
  readonly rest: CpuTime;
}

/** The name libvips gives its worker threads. */
const LIBVIPS_THREAD = 'libvips worker';

/** The sum of two CPU times. */
export const plus = (a: CpuTime, b: CpuTime): CpuTime => ({ user: a.user + b.user, system: a.system + b.system });
const minus = (a: CpuTime, b: CpuTime): CpuTime => ({ user: a.user - b.user, system: a.system - b.system });

export function threadCpu(pid: number): ThreadCpu {
  const all = statCpu(`/proc/${pid}/stat`);
  const main = statCpu(`/proc/${pid}/task/${pid}/stat`);
  if (all === null || main === null) throw new Error(`process ${pid} is gone`);
  let libvips: CpuTime = { user: 0, system: 0 };
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const thread = statCpu(`/proc/${pid}/task/${tid}/stat`);
    if (thread?.name === LIBVIPS_THREAD) libvips = plus(libvips, thread);
  }
  return { main: { user: main.user, system: main.system }, libvips, rest: minus(all, plus(main, libvips)) };
}

/**
 * What each kind of thread used between two readings of `threadCpu`. A libvips
 * worker that ends between them moves its time from `libvips` to `rest`.
 */
export function threadCpuSince(before: ThreadCpu, after: ThreadCpu): ThreadCpu {
  return { main: minus(after.main, before.main), libvips: minus(after.libvips, before.libvips), rest: minus(after.rest, before.rest) };
}

/** File descriptors the process holds open now. */
export function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

export interface RssSampler {
  /** Stops sampling and returns the samples, oldest first. */
  stop(): RssSample[];
}

/** Samples `pid`'s RSS every `intervalMs`, timed from `origin` (a `performance.now()` value). */
export function sampleRss(pid: number, intervalMs: number, origin: number): RssSampler {
  const samples: RssSample[] = [];
  const take = (): void => {
    const memory = residentMemory(pid);
    if (memory !== null) samples.push({ ms: performance.now() - origin, ...memory });
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}
