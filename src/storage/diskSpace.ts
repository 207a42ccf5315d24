import fsp from 'node:fs/promises';

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
export async function freeDiskBytes(dir: string): Promise<number> {
  const stats = await fsp.statfs(dir);
  return stats.bavail * stats.bsize;
}
