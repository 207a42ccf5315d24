import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { exitOf, listeningPort, type ExitStatus } from '../../bench/lib/childService.js';

/** The package root, where `scripts/start.sh` and `dist/` are. */
const root = path.resolve(import.meta.dirname, '../..');

/** Log lines kept per process, for the message of a failing test. */
const LOG_LINES_KEPT = 300;

/** How long a start may take before the process is killed and the start fails. */
const START_TIMEOUT_MS = 20_000;

/** Settings every test process starts with; a test's own `env` overrides them. */
const baseEnv = {
  HOST: '127.0.0.1',
  PORT: '0',
  // `info` is the level at which the service announces its port.
  LOG_LEVEL: 'info',
  MIN_FREE_DISK_BYTES: '0',
  RETRY_BASE_MS: '50',
  RETRY_MAX_MS: '500',
};

export interface ServiceProcess {
  readonly url: string;
  /** The service's own pid (scripts/start.sh execs node). */
  readonly pid: number;
  readonly dataDir: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<ExitStatus>;
  /** The last lines the process wrote (stdout and stderr), oldest first. */
  logTail(): string;
}

/** How to SIGKILL each service process that has not exited yet. */
const live = new Set<() => Promise<ExitStatus>>();
const dataDirs = new Set<string>();

/** A fresh DATA_DIR, removed by `cleanUpServiceProcesses`. */
export function newDataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-jobs-process-'));
  dataDirs.add(dir);
  return dir;
}

/**
 * Starts the built service (`dist/`, compiled once by the global setup) as a
 * child process the way `npm start` runs it, through scripts/start.sh, on
 * `dataDir` and an ephemeral port. Tests must call `cleanUpServiceProcesses`
 * in afterEach or afterAll, so no process outlives its test, even a failing one.
 */
export async function startServiceProcess(dataDir: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const child = spawn('sh', ['scripts/start.sh'], {
    cwd: root,
    // Only PATH from the test runner: the service sees its own settings and nothing of vitest's.
    env: { PATH: process.env.PATH ?? '', ...baseEnv, ...env, DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = exitOf(child);
  const lines: string[] = [];
  const keep = (line: string): void => {
    lines.push(line);
    if (lines.length > LOG_LINES_KEPT) lines.shift();
  };
  child.stderr?.setEncoding('utf8').on('data', (text: string) => text.split('\n').filter(Boolean).forEach(keep));

  // scripts/start.sh `exec`s node: the signal reaches the service itself.
  const kill = (signal: NodeJS.Signals): Promise<ExitStatus> => {
    child.kill(signal);
    return exited;
  };
  const killNow = (): Promise<ExitStatus> => kill('SIGKILL');
  live.add(killNow);
  void exited.then(() => live.delete(killNow));
  const logTail = (): string => lines.join('\n');

  try {
    const port = await listeningPort(child, exited, { onLine: keep, timeoutMs: START_TIMEOUT_MS });
    return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, dataDir, exited, kill, logTail };
  } catch (error) {
    await killNow();
    throw new Error(`${(error as Error).message}:\n${logTail()}`, { cause: error });
  }
}

/** SIGKILLs every service process still running, waits for each to exit, then removes the data dirs. */
export async function cleanUpServiceProcesses(): Promise<void> {
  await Promise.all([...live].map((killNow) => killNow()));
  for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
  dataDirs.clear();
}

/** Opens the service's database read-only (the service may be running: WAL allows it), runs `read`, closes it. */
export function readDatabase<T>(dataDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(path.join(dataDir, 'jobs.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** Every file under the service's temp store, relative to it. */
export function tempFiles(dataDir: string): string[] {
  const tmp = path.join(dataDir, 'tmp');
  if (!fs.existsSync(tmp)) return [];
  return (fs.readdirSync(tmp, { recursive: true }) as string[]).map((entry) => path.normalize(entry));
}
