import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { close, fsync, open, rmdir, write } from './fsCalls.js';
import { coalesce, fsyncPath } from './fsync.js';

/**
 * Where image bytes live between submission and delivery: one folder per job
 * (its key, made by the server, never by a client), holding input `<index>`
 * and conversion outputs `<index>.out.<ext>`. Nothing else in the service
 * touches these paths directly; an object store could take this module's place.
 */

/** More bytes arrived than the limit allows; the partial file is left for `remove`. */
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
    this.name = 'TooLargeError';
  }
}

const KEY_PATTERN = /^[0-9a-f-]{36}$/;

export interface TempFolder {
  readonly key: string;
  /** Newest modification time of the folder or any file in it. */
  readonly mtimeMs: number;
  readonly files: number;
  readonly bytes: number;
}

/** How many leading bytes of an input `writeInput` keeps: what file-type reads to sniff a format. */
export const HEAD_BYTES = 4_100;

/** What `writeInput` stored. */
export interface WrittenInput {
  readonly bytes: number;
  /** Settles once the file's data and name are durable (fsync of the file and its folder, side by side). */
  readonly synced: Promise<void>;
  /** The first `HEAD_BYTES` bytes (fewer for a smaller file), so the format is sniffed without reading the file again. */
  readonly head: Buffer;
}

async function writeAll(fd: number, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await write(fd, chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

export type TempStore = ReturnType<typeof createTempStore>;

export function createTempStore(root: string) {
  fs.mkdirSync(root, { recursive: true });
  // The root's entries are the job folders: one fsync of it serves every folder made before it starts.
  const syncRoot = coalesce(() => fsyncPath(root));
  /** The root fsync each new folder waits for, started as the folder is made, so it runs while the upload does. */
  const rootSynced = new Map<string, Promise<void>>();

  const folder = (key: string): string => {
    // Keys come from this module; refuse anything else so no path escapes the root.
    if (!KEY_PATTERN.test(key)) throw new Error(`not a temp store key: ${key}`);
    return path.join(root, key);
  };

  return {
    root,

    /** Creates a new empty folder and returns its key; `sync` or `remove` must follow. */
    async create(): Promise<string> {
      const key = randomUUID();
      await fsp.mkdir(folder(key));
      const synced = syncRoot();
      synced.catch(() => undefined); // awaited by sync(), which rethrows; not an unhandled rejection meanwhile
      rootSynced.set(key, synced);
      return key;
    },

    inputPath(key: string, index: number): string {
      return path.join(folder(key), String(index));
    },

    outputPath(key: string, index: number, extension: string): string {
      return path.join(folder(key), `${index}.out.${extension}`);
    },

    /**
     * Streams `source` to image `index`'s input file, then starts making it
     * durable (fsync of the file and of its folder), which the returned
     * `synced` settles with: a caller reads the file (sniff, header) while
     * the fsyncs run, and a caller refusing it need not wait for them.
     * Throws `TooLargeError` past `maxBytes` (checked as bytes arrive). One
     * chunk at a time: the next is read only once the last is written, so a
     * slow disk holds the upload back instead of buffering it. `written`, if
     * given, is told of each chunk once it is written and no longer needed
     * here (see `releaseChunk`).
     */
    async writeInput(key: string, index: number, source: Readable, maxBytes: number, written?: (chunk: Buffer) => void): Promise<WrittenInput> {
      // Until the loop below takes the source, an error it emits (its client gone) must not go
      // unheard and crash the process; the loop then finds the source destroyed and throws that error.
      const heldUntilRead = (): void => undefined;
      source.on('error', heldUntilRead);
      let fd: number;
      try {
        fd = await open(this.inputPath(key, index), 'wx');
      } finally {
        source.off('error', heldUntilRead);
      }
      let bytes = 0;
      const head: Buffer[] = [];
      let headBytes = 0;
      try {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          if (bytes > maxBytes) throw new TooLargeError(maxBytes);
          if (headBytes < HEAD_BYTES) {
            // A copy: a view would keep the whole socket chunk alive as long as the head.
            const part = Buffer.from(chunk.subarray(0, HEAD_BYTES - headBytes));
            head.push(part);
            headBytes += part.length;
          }
          await writeAll(fd, chunk);
          written?.(chunk);
        }
      } catch (error) {
        await close(fd);
        throw error;
      }
      // Both settle before the descriptor closes: a queued fsync must not meet a reused descriptor number.
      const synced = Promise.allSettled([fsync(fd), fsyncPath(folder(key))]).then(async (outcomes) => {
        await close(fd);
        for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
      });
      synced.catch(() => undefined); // the caller's to await (and rethrow); not an unhandled rejection meanwhile
      return { bytes, head: Buffer.concat(head), synced };
    },

    /**
     * Resolves once the folder's own name is durable in the root; with each
     * file's `synced`, all a job needs before it may point at the folder.
     */
    async sync(key: string): Promise<void> {
      const synced = rootSynced.get(key) ?? syncRoot();
      rootSynced.delete(key);
      await synced;
    },

    /** Deletes a folder and all in it; idempotent. */
    async remove(key: string): Promise<void> {
      rootSynced.delete(key);
      try {
        // Usually empty by now (a delivered image's files go as it is recorded): one call.
        await rmdir(folder(key));
      } catch (error) {
        const { code } = error as NodeJS.ErrnoException;
        if (code === 'ENOTEMPTY') await fsp.rm(folder(key), { recursive: true, force: true });
        else if (code !== 'ENOENT') throw error;
      }
    },

    /** Every folder in the store with its size and age. */
    async list(): Promise<TempFolder[]> {
      const folders: TempFolder[] = [];
      for (const entry of await fsp.readdir(root, { withFileTypes: true })) {
        if (!entry.isDirectory() || !KEY_PATTERN.test(entry.name)) continue;
        const dir = path.join(root, entry.name);
        try {
          let mtimeMs = (await fsp.stat(dir)).mtimeMs;
          let bytes = 0;
          const names = await fsp.readdir(dir);
          for (const name of names) {
            const stat = await fsp.stat(path.join(dir, name)).catch(() => null);
            if (!stat) continue;
            bytes += stat.size;
            mtimeMs = Math.max(mtimeMs, stat.mtimeMs);
          }
          folders.push({ key: entry.name, mtimeMs, files: names.length, bytes });
        } catch (error) {
          // Removed while we looked: not there any more.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      return folders;
    },
  };
}
