import fs from 'node:fs';
import path from 'node:path';

/**
 * `mkdir -p` that fails instead of spinning. Node's own recursive mkdir takes
 * ENOENT to mean "the parent is missing" and retries for ever when the parent
 * exists but refuses new entries (`/proc/nope`: /proc answers ENOENT). Here
 * each folder is tried at most twice: once, and once more after its parent
 * has been made; an ENOENT then is the answer.
 */
export function makeDirectorySync(dir: string): void {
  try {
    fs.mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    makeDirectorySync(parent);
    try {
      fs.mkdirSync(dir);
    } catch (again) {
      // Made meanwhile by someone else: what was asked for.
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(dir).isDirectory()) throw again;
    }
  }
}
