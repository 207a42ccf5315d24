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

/** Deletes a file; one already gone is fine. One call, where `fsp.rm` first stats the path. */
export async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
