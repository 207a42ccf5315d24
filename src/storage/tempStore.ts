import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsyncPath } from './fsync.js';

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

/** Counts bytes through, failing once more than `limit` went by. */
function byteLimit(limit: number, counted: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      counted.bytes += chunk.length;
      if (counted.bytes > limit) callback(new TooLargeError(limit));
      else callback(null, chunk);
    },
  });
}

export type TempStore = ReturnType<typeof createTempStore>;

export function createTempStore(root: string) {
  fs.mkdirSync(root, { recursive: true });

  const folder = (key: string): string => {
    // Keys come from this module; refuse anything else so no path escapes the root.
    if (!KEY_PATTERN.test(key)) throw new Error(`not a temp store key: ${key}`);
    return path.join(root, key);
  };

  return {
    root,

    /** Creates a new empty folder and returns its key. */
    async create(): Promise<string> {
      const key = randomUUID();
      await fsp.mkdir(folder(key));
      return key;
    },

    inputPath(key: string, index: number): string {
      return path.join(folder(key), String(index));
    },

    outputPath(key: string, index: number, extension: string): string {
      return path.join(folder(key), `${index}.out.${extension}`);
    },

    /**
     * Streams `source` to image `index`'s input file and fsyncs it. Throws
     * `TooLargeError` past `maxBytes` (checked as bytes arrive). Returns the
     * bytes written.
     */
    async writeInput(key: string, index: number, source: Readable, maxBytes: number): Promise<number> {
      const counted = { bytes: 0 };
      // `flush` fsyncs before the stream closes its file, and the pipeline waits for that close.
      // (Not a FileHandle stream with autoClose off: its handle's close() never settles, nodejs/node#54797.)
      await pipeline(source, byteLimit(maxBytes, counted), fs.createWriteStream(this.inputPath(key, index), { flags: 'wx', flush: true }));
      return counted.bytes;
    },

    /** Makes the folder's entries durable (their names), after their contents were fsync'd. */
    async sync(key: string): Promise<void> {
      await fsyncPath(folder(key));
      await fsyncPath(root);
    },

    /** Deletes a folder and all in it; idempotent. */
    async remove(key: string): Promise<void> {
      await fsp.rm(folder(key), { recursive: true, force: true });
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
