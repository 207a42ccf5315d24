import { diskFullOr } from '../storage/diskFull.js';

type Verbs = Record<string, (...args: never[]) => unknown>;

/**
 * `verbs` as they are, except that a write finding the disk full (SQLITE_FULL,
 * or ENOSPC from an fsync) throws `DiskFullError`, whether it throws or
 * rejects: every caller meets one error for it, which the API answers with
 * 503 and an attempt retries, whichever verb it used.
 */
export function surfaceDiskFull<T extends Verbs>(verbs: T): T {
  const surfaced: Record<string, unknown> = {};
  for (const [name, verb] of Object.entries(verbs)) {
    surfaced[name] = (...args: never[]): unknown => {
      let result: unknown;
      try {
        result = verb(...args);
      } catch (error) {
        throw diskFullOr(error);
      }
      return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(diskFullOr(error))) : result;
    };
  }
  return surfaced as T;
}
