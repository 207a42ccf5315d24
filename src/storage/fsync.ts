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
 * everything done before it starts. A run starts once the current turn's
 * synchronous code and queued promise callbacks are done, so callers of the
 * same turn (the submissions one group commit answered, say) share it; a call
 * made while a run is under way waits for the next one, which starts when
 * that run ends: a caller never joins a run that may have begun before its write.
 */
export function coalesce(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;

  const start = (): Promise<void> => {
    next = null;
    const run = task().finally(() => {
      if (running === run) running = null;
    });
    running = run;
    return run;
  };

  return () => {
    next ??= (running ?? Promise.resolve()).catch(() => undefined).then(start);
    return next;
  };
}
