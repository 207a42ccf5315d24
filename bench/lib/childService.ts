import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<number | null>;
}

/** Settles when `child` exits. Call it right after spawning, so the exit cannot be missed. */
export function exitOf(child: ChildProcess): Promise<ExitStatus> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** How long a server may take to say it listens before the start counts as failed. */
const LISTEN_TIMEOUT_MS = 30_000;

/**
 * Resolves with the port of the JSON log line in which a server process says
 * it listens (`{"msg":"listening","port":…}`, the way both our service and the
 * bench's bare server announce themselves); rejects if it exits first or says
 * nothing within `timeoutMs` (the caller kills it). Every stdout line, that
 * one included, is handed to `onLine` as long as the process runs.
 */
export function listeningPort(
  child: ChildProcess,
  exited: Promise<ExitStatus>,
  { onLine, timeoutMs = LISTEN_TIMEOUT_MS }: { onLine?: (line: string) => void; timeoutMs?: number } = {},
): Promise<number> {
  if (child.stdout === null) throw new Error('the child process has no piped stdout');
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    let listening = false;
    const timer = setTimeout(() => reject(new Error(`${child.spawnargs.join(' ')} did not say it listens within ${timeoutMs} ms (is LOG_LEVEL above info?)`)), timeoutMs);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`${child.spawnargs.join(' ')} exited (${signal ?? code}) before listening`));
    });
    lines.on('line', (line) => {
      onLine?.(line);
      if (listening) return;
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line) as { msg?: string; port?: number };
      } catch {
        return;
      }
      if (entry.msg === 'listening' && typeof entry.port === 'number') {
        listening = true;
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
  });
}

/**
 * The environment an image bench gives the service on top of its own: a
 * fresh DATA_DIR, an ephemeral port, no free-disk floor, and log level info,
 * at which the service writes the `listening` line its port is read from.
 */
export function benchServiceEnv(dataDir: string): NodeJS.ProcessEnv {
  return { DATA_DIR: dataDir, PORT: '0', MIN_FREE_DISK_BYTES: '0', LOG_LEVEL: 'info' };
}

/** Spawns a server process and waits until it says it listens. */
export async function spawnServer(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Child> {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = exitOf(child);
  let port: number;
  try {
    port = await listeningPort(child, exited);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    process: child,
    port,
    stop: async () => {
      child.kill('SIGTERM');
      return (await exited).code;
    },
  };
}
