/** Bounds both job stores keep to, so a transaction stays short and a row stays small whatever the queue holds. */

/** Error text kept in the database is bounded: a runaway message must not bloat rows. */
const MAX_ERROR_MESSAGE = 2_000;
export const clip = (message: string): string => (message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message);

/**
 * Due `scheduled` jobs one claim moves to `queued` at the most: a claim's
 * transaction stays short however many jobs fall due at once (each job is
 * promoted once, so the work per job is the same whatever the batch), and
 * the scheduler claims again at once while some due ones are left.
 */
export const PROMOTE_BATCH = 1_000;

/** Terminal jobs one `pruneTerminal` deletes at the most (with their images and events): a few milliseconds of work. */
export const PRUNE_BATCH = 200;

/**
 * Claims promote due `scheduled` jobs at least this often even while there
 * is queued work to claim (and whenever a claim finds too little): a job
 * falling due waits at most this long to compete by priority, and a busy
 * queue pays for one promotion a second rather than one per claim.
 */
export const PROMOTE_INTERVAL_MS = 1_000;
