import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A small tmpfs mounted in a temp folder, so a test can fill a real disk to
 * any edge. Mounting needs root (CI runs as root); where it is not allowed,
 * `mountSmallDisk` returns the reason instead.
 */
export interface SmallDisk {
  readonly root: string;
  /** Free bytes on the disk now, as statfs reports them to the service. */
  freeBytes(): number;
  /** Grows or shrinks a filler file until `bytes` (rounded to the disk's blocks) are left free. */
  leaveFree(bytes: number): void;
  /** Removes the filler: the space comes back. */
  empty(): void;
  /** A fresh folder on the disk, for one service's DATA_DIR. */
  newFolder(): string;
  unmount(): void;
}

export function mountSmallDisk(sizeBytes: number): SmallDisk | string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'image-jobs-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', root], { stdio: 'pipe' });
  } catch (error) {
    fs.rmdirSync(root);
    // mount's first line says why ("must be superuser"); the skip is told in one line.
    const reason = (error as { stderr?: Buffer }).stderr?.toString().trim() || (error as Error).message;
    return reason.split('\n', 1)[0] ?? reason;
  }
  const filler = path.join(root, 'filler');
  let folders = 0;

  const freeBytes = (): number => {
    const stats = fs.statfsSync(root);
    return stats.bavail * stats.bsize;
  };

  return {
    root,
    freeBytes,

    leaveFree(bytes: number): void {
      const size = fs.existsSync(filler) ? fs.statSync(filler).size : 0;
      const grow = freeBytes() - bytes;
      if (grow <= 0) {
        fs.truncateSync(filler, Math.max(0, size + grow));
        return;
      }
      const fd = fs.openSync(filler, 'a');
      const block = Buffer.alloc(1024 * 1024, 0xa5);
      try {
        for (let left = grow; left > 0; ) {
          const written = fs.writeSync(fd, block, 0, Math.min(block.length, left));
          left -= written;
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error; // asked for less than nothing: full is as far as it goes
      } finally {
        fs.closeSync(fd);
      }
    },

    empty(): void {
      fs.rmSync(filler, { force: true });
    },

    newFolder(): string {
      folders += 1;
      const folder = path.join(root, `data-${folders}`);
      fs.mkdirSync(folder);
      return folder;
    },

    unmount(): void {
      // Lazily, should anything still hold a file open: the mount goes once it is let go.
      execFileSync('umount', ['-l', root]);
      fs.rmdirSync(root);
    },
  };
}
