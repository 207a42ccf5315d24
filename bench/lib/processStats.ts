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

/**
 * CPU time the process has used so far, user and system, in seconds: all its
 * threads (/proc/<pid>/stat), or only its main thread, the one running
 * JavaScript (/proc/<pid>/task/<pid>/stat).
 */
export function cpuSeconds(pid: number, only: 'all threads' | 'main thread' = 'all threads'): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  const stat = only === 'main thread' ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
  const fields = fs.readFileSync(stat, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
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
