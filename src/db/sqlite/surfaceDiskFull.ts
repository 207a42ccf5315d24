import { diskFullOr } from '../../storage/diskFull.js';

type Verbs = Record<string, (...args: never[]) => unknown>;

/**
 * `verbs` as they are, except that a write finding the disk full (SQLITE_FULL,
 * an SQLite I/O error on a nearly full volume, ENOSPC from an fsync) throws
 * `DiskFullError`, whether it throws or rejects: every caller meets one
 * error for it, which the API answers with 503 and an attempt retries,
 * whichever verb it used. `dir` is the database's folder.
 */
export function surfaceDiskFull<T extends Verbs>(verbs: T, dir: string): T {
  const surfaced: Record<string, unknown> = {};
  for (const [name, verb] of Object.entries(verbs)) {
    surfaced[name] = (...args: never[]): unknown => {
      let result: unknown;
      try {
        result = verb(...args);
      } catch (error) {
        throw diskFullOr(error, dir);
      }
      return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(diskFullOr(error, dir))) : result;
    };
  }
  return surfaced as T;
}
