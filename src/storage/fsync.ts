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

/** A file or folder fsync'd again and again through one descriptor (see `heldFsync`). */
export interface HeldFsync {
  /** fsyncs the target; calls made before a run starts share it, as with `coalesce`. */
  sync(): Promise<void>;
  /** Closes the descriptor once every run asked for has ended; call when no more `sync` calls can come. */
  close(): Promise<void>;
}

/**
 * `coalesce(() => fsyncPath(target))` through a descriptor opened at the first
 * call and kept: a stream of fsyncs of the same file or folder (one per
 * submission, say) then costs one call on libuv's pool each instead of three.
 * The target must stay the same file while held: a folder the service owns,
 * or SQLite's WAL, which SQLite only deletes when the last connection closes.
 */
export function heldFsync(target: string): HeldFsync {
  let descriptor: Promise<number> | null = null;

  const opened = (): Promise<number> => {
    descriptor ??= open(target, 'r').catch((error: unknown) => {
      descriptor = null; // tried again by the next run
      throw error;
    });
    return descriptor;
  };
  const sync = coalesce(() => opened().then((fd) => fsync(fd)));

  return {
    sync,
    async close() {
      // A call now gets a run that starts after every run already asked for: once it ends, none is left.
      await sync().catch(() => undefined);
      const held = descriptor;
      descriptor = null;
      const fd = await held?.catch(() => null);
      if (fd !== undefined && fd !== null) await close(fd);
    },
  };
}
