import fs from 'node:fs';

/**
 * What this process's open descriptors point at, among paths starting with
 * `prefix` (Linux, /proc). A removed file still open shows as
 * `<path> (deleted)`.
 */
export function openFilesUnder(prefix: string): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(prefix) ? [target] : [];
    } catch {
      return []; // closed while we looked
    }
  });
}
