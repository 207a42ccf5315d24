import fs from 'node:fs';
import { promisify } from 'node:util';

/**
 * The file calls on the hot paths (submission, delivery), as promises over
 * fs's callback forms: per call they cost the main thread less than
 * fs/promises, whose FileHandle objects are tracked and closed through more
 * machinery.
 */
export const open = promisify(fs.open);
export const write = promisify(fs.write);
export const fsync = promisify(fs.fsync);
export const close = promisify(fs.close);

const unlink = promisify(fs.unlink);

/** Writes all of `chunk` at the file's position: `write` may take fewer bytes than it is given. */
export async function writeAll(fd: number, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await write(fd, chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/** Deletes a file; one already gone is fine. One call, where `fsp.rm` first stats the path. */
export async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
