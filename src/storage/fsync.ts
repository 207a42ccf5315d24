import { close, fsync, open } from './fsCalls.js';

/**
 * fsyncs a file or a folder by path. A folder's fsync makes the names in it
 * durable: a renamed or newly created file survives power loss only then.
 */
export async function fsyncPath(target: string): Promise<void> {
  const fd = await open(target, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

/**
 * One run of `task` for many callers, for work like an fsync that covers
 * everything done before it starts. A call made while no run is under way
 * starts one; a call made during a run waits for the next, which starts when
 * the running one ends and serves every call made in between. A caller never
 * joins a run already under way: it may have begun before the caller's write.
 */
export function coalesce(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;

  const start = (): Promise<void> => {
    const run = task().finally(() => {
      if (running === run) running = null;
    });
    running = run;
    return run;
  };

  return () => {
    if (next !== null) return next;
    if (running === null) return start();
    next = running
      .catch(() => undefined)
      .then(() => {
        next = null;
        return start();
      });
    return next;
  };
}
