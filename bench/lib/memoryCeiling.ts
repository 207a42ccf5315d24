import fs from 'node:fs';
import path from 'node:path';

/**
 * A memory ceiling for one process and its children: a cgroup of its own
 * with a memory limit (cgroup v2's memory.max, or v1's
 * memory.limit_in_bytes), so that a process that outgrows it is killed by
 * the kernel's OOM killer, as a container's would be, and the kill is
 * counted. Unlike `ulimit -v`, it limits memory used, not address space,
 * which V8 and libvips reserve far beyond what they touch. Needs root.
 */
export interface MemoryCeiling {
  readonly limitBytes: number;
  /** Runs `command` inside the ceiling: `sh` moves itself in, then execs it (same pid). */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] };
  /** Processes the kernel has killed for want of memory inside the ceiling. */
  oomKills(): number;
  /** Removes the cgroup; call once its processes have exited. */
  remove(): void;
}

const ROOT = '/sys/fs/cgroup';

export function createMemoryCeiling(name: string, limitBytes: number): MemoryCeiling {
  const v2 = fs.existsSync(path.join(ROOT, 'cgroup.controllers'));
  const dir = v2 ? path.join(ROOT, name) : path.join(ROOT, 'memory', name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limitBytes));
  // v2 counts the kills in memory.events, v1 in memory.oom_control; both as a line `oom_kill N`.
  const counters = path.join(dir, v2 ? 'memory.events' : 'memory.oom_control');
  return {
    limitBytes,
    wrap: (command, args) => ({ command: 'sh', args: ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, command, ...args] }),
    oomKills: () => Number(/^oom_kill (\d+)$/m.exec(fs.readFileSync(counters, 'utf8'))?.[1] ?? 0),
    remove: () => fs.rmdirSync(dir),
  };
}
