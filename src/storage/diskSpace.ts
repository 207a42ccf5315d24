import fsp from 'node:fs/promises';

/** How long a measured figure is used again: free space moves slowly next to a rate of submissions. */
const MAX_AGE_MS = 1_000;

const measured = new Map<string, { readonly at: number; readonly bytes: Promise<number> }>();

/** Free bytes for an unprivileged writer on the file system holding `dir`, measured at most once a second. */
export function freeDiskBytes(dir: string): Promise<number> {
  const now = Date.now();
  const last = measured.get(dir);
  if (last !== undefined && now - last.at < MAX_AGE_MS) return last.bytes;
  const bytes = fsp.statfs(dir).then((stats) => stats.bavail * stats.bsize);
  measured.set(dir, { at: now, bytes });
  bytes.catch(() => measured.delete(dir)); // a failed measure is not reused; the caller sees its error
  return bytes;
}
