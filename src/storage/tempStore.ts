import { createHash, randomUUID } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { diskFullOr } from './diskFull.js';
import { close, fsync, open, removeFile, writeAll } from './fsCalls.js';
import { heldFsync } from './fsync.js';
import { makeDirectorySync } from './makeDirectory.js';

/**
 * Where image bytes live between submission and delivery: files side by side
 * in one folder, named by their job's key (made by the server, never by a
 * client): input `<key>.<index>` and conversion output
 * `<key>.<index>.out.<ext>`. No folder per job: a new file's name is made
 * durable by one fsync of the root, which the files being written at the same
 * time share. Nothing else in the service touches these paths directly; an
 * object store could take this module's place.
 */

/** More bytes arrived than the limit allows; the partial file is left for `removeInputs`. */
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
    this.name = 'TooLargeError';
  }
}

const KEY_PATTERN = /^[0-9a-f-]{36}$/;
/** A file of the store: its key, then its image index, then (an output) `.out.<ext>`. */
const FILE_PATTERN = /^([0-9a-f-]{36})\.\d{1,6}(?:\.out\.[a-z0-9]{1,8})?$/;

/** The files of one key, as `list` found them. */
export interface TempFiles {
  readonly key: string;
  readonly names: readonly string[];
  /** Newest modification time of its files. */
  readonly mtimeMs: number;
  readonly bytes: number;
}

/**
 * How many leading bytes of an input `writeInput` keeps: what file-type reads
 * to sniff a format (4,100), and room for a whole JPEG or PNG header, EXIF
 * thumbnail included, so the header is read without opening the file.
 */
export const HEAD_BYTES = 64 * 1024;

/** What `writeInput` stored. */
export interface WrittenInput {
  readonly bytes: number;
  /** Settles once the file's data and name are durable (fsync of the file and its folder, side by side). */
  readonly synced: Promise<void>;
  /** The first `HEAD_BYTES` bytes (fewer for a smaller file), so the format is sniffed and the header read without reading the file again. */
  readonly head: Buffer;
  /** SHA-256 of the bytes written, hex, when asked for (null otherwise); hashed chunk by chunk as they pass, so no more of them is held. */
  readonly sha256: string | null;
}

export type TempStore = ReturnType<typeof createTempStore>;

export function createTempStore(root: string) {
  makeDirectorySync(root);
  // One fsync of the root makes durable the name of every file created before it starts.
  const rootSync = heldFsync(root);
  /** Written inputs whose fsyncs or close are still under way, which `close` waits for. */
  const closing = new Set<Promise<void>>();

  const file = (key: string, name: string): string => {
    // Keys come from this module; refuse anything else so no path escapes the root.
    if (!KEY_PATTERN.test(key)) throw new Error(`not a temp store key: ${key}`);
    return path.join(root, `${key}.${name}`);
  };

  return {
    root,

    /** A new key for one job's files; nothing exists under it yet. */
    newKey(): string {
      return randomUUID();
    },

    inputPath(key: string, index: number): string {
      return file(key, String(index));
    },

    outputPath(key: string, index: number, extension: string): string {
      return file(key, `${index}.out.${extension}`);
    },

    /**
     * Streams `source` to image `index`'s input file and makes it durable:
     * the root that names it is fsync'd while the bytes arrive (the name
     * exists from the start), the file once they are written. The returned
     * `synced` settles with both: a caller reads the file (sniff, header)
     * while the fsyncs run, and a caller refusing it need not wait for them.
     * Throws `TooLargeError` past `maxBytes` (checked as bytes arrive). One
     * chunk at a time: the next is read only once the last is written, so a
     * slow disk holds the upload back instead of buffering it. `written`, if
     * given, is told of each chunk once it is written and no longer needed
     * here (see `releaseChunk`). With `digest`, the bytes are hashed as they
     * pass (`sha256`). A full disk throws `DiskFullError`. The source is left
     * as it is when writing stops early: its owner decides whether to drain it
     * or close its connection.
     */
    async writeInput(
      key: string, index: number, source: Readable, maxBytes: number, written?: (chunk: Buffer) => void, digest = false,
    ): Promise<WrittenInput> {
      // Until the loop below takes the source, an error it emits (its client gone) must not go
      // unheard and crash the process; the loop then finds the source destroyed and throws that error.
      const heldUntilRead = (): void => undefined;
      source.on('error', heldUntilRead);
      let fd: number;
      try {
        fd = await open(this.inputPath(key, index), 'wx');
      } catch (error) {
        throw diskFullOr(error);
      } finally {
        source.off('error', heldUntilRead);
      }
      const named = rootSync.sync();
      named.catch(() => undefined); // awaited with the file's fsync below; unheard if the upload fails first
      let bytes = 0;
      const hash = digest ? createHash('sha256') : null;
      const head: Buffer[] = [];
      let headBytes = 0;
      try {
        for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          if (bytes > maxBytes) throw new TooLargeError(maxBytes);
          if (headBytes < HEAD_BYTES) {
            // A copy: a view would keep the whole socket chunk alive as long as the head.
            const part = Buffer.from(chunk.subarray(0, HEAD_BYTES - headBytes));
            head.push(part);
            headBytes += part.length;
          }
          hash?.update(chunk);
          await writeAll(fd, chunk);
          written?.(chunk);
        }
      } catch (error) {
        await close(fd).catch(() => undefined); // the upload's error is the one to report
        throw diskFullOr(error);
      }
      const fsyncs = Promise.allSettled([fsync(fd), named]);
      // The descriptor closes once both have settled (a queued fsync must not meet a reused
      // descriptor number), so nothing can lose data there; the caller does not wait for it.
      const closed: Promise<void> = fsyncs
        .then(() => close(fd))
        .catch(() => undefined)
        .finally(() => closing.delete(closed));
      closing.add(closed);
      const synced = fsyncs.then((outcomes) => {
        for (const outcome of outcomes) if (outcome.status === 'rejected') throw diskFullOr(outcome.reason);
      });
      synced.catch(() => undefined); // the caller's to await (and rethrow); not an unhandled rejection meanwhile
      return { bytes, head: head.length === 1 ? (head[0] as Buffer) : Buffer.concat(head), synced, sha256: hash?.digest('hex') ?? null };
    },

    /** Deletes the inputs of images `indexes` of `key`; idempotent. */
    async removeInputs(key: string, indexes: Iterable<number>): Promise<void> {
      const removals = [];
      for (const index of indexes) removals.push(removeFile(this.inputPath(key, index)));
      await Promise.all(removals);
    },

    /** Deletes the files `list` found under one key; idempotent. */
    async removeFiles(files: TempFiles): Promise<void> {
      for (const name of files.names) if (FILE_PATTERN.exec(name)?.[1] !== files.key) throw new Error(`not a temp store file of ${files.key}: ${name}`);
      await Promise.all(files.names.map((name) => removeFile(path.join(root, name))));
    },

    /** Closes the descriptors the store still holds, its folder's among them; once nothing writes to it any more. */
    async close(): Promise<void> {
      await Promise.all(closing);
      await rootSync.close();
    },

    /** Every key with files in the store, with their size and age. */
    async list(): Promise<TempFiles[]> {
      const byKey = new Map<string, { names: string[]; mtimeMs: number; bytes: number }>();
      for (const name of await fsp.readdir(root)) {
        const key = FILE_PATTERN.exec(name)?.[1];
        if (key === undefined) continue;
        const stat = await fsp.stat(path.join(root, name)).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return null; // removed while we looked: not there any more
          throw error;
        });
        if (stat === null) continue;
        const entry = byKey.get(key) ?? { names: [], mtimeMs: 0, bytes: 0 };
        entry.names.push(name);
        entry.mtimeMs = Math.max(entry.mtimeMs, stat.mtimeMs);
        entry.bytes += stat.size;
        byKey.set(key, entry);
      }
      return [...byKey].map(([key, entry]) => ({ key, ...entry }));
    },
  };
}
