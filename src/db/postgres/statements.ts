import type { QueryConfig } from 'pg';
import { EventKind, jobStatuses, terminalStatuses } from '../../jobs/states.js';

/**
 * All SQL of the PostgreSQL job store, as named statements: node-postgres
 * prepares each once per connection, by name, and runs it again with new
 * values. Times are epoch milliseconds passed in by the caller.
 */

/** A named statement taking `P`; `bind` gives it its values. */
export interface Statement<P extends unknown[]> {
  readonly name: string;
  readonly text: string;
  readonly bind: (...values: P) => QueryConfig;
}

function statement<P extends unknown[]>(name: string, text: string): Statement<P> {
  return { name, text, bind: (...values: P) => ({ name, text, values }) };
}

/**
 * The fence of every write made on behalf of an attempt: the job still runs
 * under this owner, in this attempt. A late or abandoned attempt matches no
 * row and changes nothing. Its three operands are parameters or the columns
 * of an `unnest` of attempts.
 */
const fence = (id: string, owner: string, attempt: string): string =>
  `jobs.id = ${id} AND jobs.status = 'running' AND jobs.lease_owner = ${owner} AND jobs.attempts = ${attempt}`;

/** `status IN (…)` for states of the closed list. */
const statusIn = (statuses: readonly string[]): string => `status IN (${statuses.map((status) => `'${status}'`).join(', ')})`;

/** Word for word the WHERE of jobs_finished_idx, so the planner can use that partial index. */
const TERMINAL = statusIn(terminalStatuses);
const LIVE = statusIn(['scheduled', 'queued', 'running']);

/** The LISTEN/NOTIFY channel every instance's commits are announced on. */
export const SIGNAL_CHANNEL = 'image_jobs';

/**
 * Statements that pick rows by a subquery take them as `id = ANY(ARRAY(…))`:
 * the subquery runs once, reading its index, and each row it names is
 * fetched by primary key. Written as `id IN (…)`, a claim or promotion of
 * many rows can be planned as a hash join over a scan of the whole table.
 */

/**
 * Ends attempts, given as arrays of job ids, owners and attempt numbers ($1
 * to $3), at $4, each under the fence, with `set` as the job's new state;
 * records one `kind` event per attempt ended, with the error $5/$6 (null
 * when none). Returns each ended job's id, state, image count and run_at,
 * with the attempt that held it. `jobs.id = ANY($1)` repeats the fence's
 * id test so the planner fetches the jobs by primary key rather than scan
 * every running job.
 */
const endAttempts = <P extends unknown[]>(name: string, kind: EventKind, set: string) =>
  statement<[ids: number[], owners: string[], attempts: number[], now: number, code: string | null, message: string | null, ...P]>(
    name,
    `WITH ended AS (
       UPDATE jobs SET ${set}, lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
         FROM unnest($1::bigint[], $2::text[], $3::int[]) AS r(id, owner, attempt)
        WHERE ${fence('r.id', 'r.owner', 'r.attempt')} AND jobs.id = ANY($1::bigint[])
        RETURNING jobs.id, jobs.status, jobs.image_count, jobs.run_at, r.owner, r.attempt),
     recorded AS (
       INSERT INTO job_events (job_id, attempt, kind, lease_owner, error_code, error_message, at)
       SELECT id, attempt, '${kind}', owner, $5::text, $6::text, $4 FROM ended)
     SELECT id, status, image_count, run_at, owner, attempt FROM ended`,
  );

export const sql = {
  // Store a new job (queued if due, else scheduled) with its image rows; no row back when its idempotency key is taken.
  insertJob: statement<[
    priority: number, maxAttempts: number, options: string, destination: string, idempotencyKey: string | null,
    requestFingerprint: string | null, inputKey: string | null, imageCount: number, runAt: number, now: number,
    names: (string | null)[], formats: string[], widths: number[], heights: number[], pages: number[], bytes: number[],
  ]>(
    'jobs_insert',
    `WITH job AS (
       INSERT INTO jobs (status, priority, max_attempts, options, destination, idempotency_key, request_fingerprint, input_key,
                         image_count, run_at, created_at, updated_at)
       VALUES (CASE WHEN $9::bigint <= $10::bigint THEN 'queued' ELSE 'scheduled' END, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
       ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING *),
     images AS (
       INSERT INTO job_images (job_id, idx, original_name, input_format, width, height, pages, input_bytes)
       SELECT job.id, i.ord - 1, i.original_name, i.input_format, i.width, i.height, i.pages, i.input_bytes
         FROM job, unnest($11::text[], $12::text[], $13::int[], $14::int[], $15::int[], $16::bigint[])
                   WITH ORDINALITY AS i(original_name, input_format, width, height, pages, input_bytes, ord))
     SELECT * FROM job`,
  ),
  // The job a previous submission stored under an idempotency key.
  byIdempotencyKey: statement<[key: string]>('jobs_by_idempotency_key', `SELECT * FROM jobs WHERE idempotency_key = $1`),
  // Move scheduled jobs whose run_at has come to queued, oldest first, skipping those another claim is promoting.
  promoteDue: statement<[now: number, batch: number]>(
    'jobs_promote_due',
    `UPDATE jobs SET status = 'queued'
      WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE status = 'scheduled' AND run_at <= $1 ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED))`,
  ),
  // Claim up to $4 queued jobs, highest priority first, then oldest run_at, skipping those other instances are claiming; record their starts.
  claimDue: statement<[owner: string, expires: number, now: number, limit: number]>(
    'jobs_claim_due',
    `WITH claimed AS (
       UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2, started_at = $3, updated_at = $3
        WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE status = 'queued' ORDER BY priority DESC, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED))
        RETURNING *),
     started AS (
       INSERT INTO job_events (job_id, attempt, kind, lease_owner, at) SELECT id, attempts, '${EventKind.started}', $1, $3 FROM claimed)
     SELECT * FROM claimed`,
  ),
  // Extend the lease of an attempt that still holds its job.
  heartbeat: statement<[id: number, owner: string, attempt: number, expires: number]>(
    'jobs_heartbeat',
    `UPDATE jobs SET lease_expires_at = $4 WHERE ${fence('$1', '$2', '$3')}`,
  ),
  // Finish attempts that delivered everything.
  complete: endAttempts<[]>(
    'jobs_complete', EventKind.succeeded,
    `status = 'succeeded', finished_at = $4, last_error_code = NULL, last_error_message = NULL`,
  ),
  // Put failed attempts' jobs back for a later run at $7: queued if already due, else scheduled.
  retry: endAttempts<[runAt: number]>(
    'jobs_retry', EventKind.retrying,
    `status = CASE WHEN $7::bigint <= $4::bigint THEN 'queued' ELSE 'scheduled' END, run_at = $7, last_error_code = $5, last_error_message = $6`,
  ),
  // Fail jobs for good.
  fail: endAttempts<[]>('jobs_fail', EventKind.failed, `status = 'failed', finished_at = $4, last_error_code = $5, last_error_message = $6`),
  // Give interrupted attempts' jobs back without counting the attempt. run_at stays as it was: the job keeps its place.
  returnAttempt: endAttempts<[]>('jobs_return', EventKind.returned, `status = 'queued', attempts = jobs.attempts - 1`),
  // Requeue lost attempts' jobs, due now (the lost attempt counts).
  requeueLost: endAttempts<[]>(
    'jobs_requeue_lost', EventKind.lost, `status = 'queued', run_at = $4, last_error_code = $5, last_error_message = $6`,
  ),
  // Fail lost attempts' jobs that have no attempts left.
  failLost: endAttempts<[]>(
    'jobs_fail_lost', EventKind.failed, `status = 'failed', finished_at = $4, last_error_code = $5, last_error_message = $6`,
  ),
  // Running jobs whose lease expired before $1 or whose owner is in $2, locked; one an attempt is ending right now is skipped.
  lostJobs: statement<[now: number, deadOwners: string[]]>(
    'jobs_lost',
    `SELECT id, lease_owner, attempts, max_attempts FROM jobs
      WHERE status = 'running' AND (lease_expires_at < $1 OR lease_owner = ANY($2::text[]))
      FOR UPDATE SKIP LOCKED`,
  ),
  // A job as it stands, locked until the transaction ends (a cancel reads what it replaces).
  lockJob: statement<[id: number]>('jobs_lock', `SELECT * FROM jobs WHERE id = $1 FOR UPDATE`),
  // Cancel a job that has not ended, and record it against the attempt it stops.
  cancel: statement<[id: number, now: number, attempt: number, owner: string | null]>(
    'jobs_cancel',
    `WITH cancelled AS (
       UPDATE jobs SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = $2, updated_at = $2,
              last_error_code = 'cancelled', last_error_message = 'cancelled by request'
        WHERE id = $1 AND ${LIVE} RETURNING *),
     recorded AS (
       INSERT INTO job_events (job_id, attempt, kind, lease_owner, error_code, error_message, at)
       SELECT id, $3, '${EventKind.cancelled}', $4, 'cancelled', 'cancelled by request', $2 FROM cancelled)
     SELECT * FROM cancelled`,
  ),
  // Make a waiting job due now.
  runNow: statement<[id: number, now: number]>(
    'jobs_run_now',
    `UPDATE jobs SET status = 'queued', run_at = $2, updated_at = $2 WHERE id = $1 AND status IN ('scheduled', 'queued') RETURNING *`,
  ),
  // Distinct owners of running jobs.
  runningOwners: statement<[]>('jobs_running_owners', `SELECT DISTINCT lease_owner FROM jobs WHERE status = 'running'`),
  // Mark one image delivered, if the attempt still holds its job (its row locked against a concurrent end).
  deliverImage: statement<[
    id: number, owner: string, attempt: number, index: number, now: number, outputFormat: string, outputWidth: number,
    outputHeight: number, outputBytes: number, scaledToFit: boolean, location: string,
  ]>(
    'jobs_deliver_image',
    `WITH holder AS (SELECT id FROM jobs WHERE ${fence('$1', '$2', '$3')} FOR SHARE)
     UPDATE job_images SET status = 'delivered', output_format = $6, output_width = $7, output_height = $8, output_bytes = $9,
            scaled_to_fit = $10, location = $11, delivered_at = $5
       FROM holder WHERE job_images.job_id = holder.id AND job_images.idx = $4`,
  ),
  getJob: statement<[id: number]>('jobs_get', `SELECT * FROM jobs WHERE id = $1`),
  // A job's images in upload order.
  images: statement<[jobId: number]>('jobs_images', `SELECT * FROM job_images WHERE job_id = $1 ORDER BY idx`),
  // A job's attempt history, oldest first.
  events: statement<[jobId: number]>('jobs_events', `SELECT * FROM job_events WHERE job_id = $1 ORDER BY id`),
  // Newest first, keyset-paginated by id.
  list: statement<[beforeId: number, limit: number]>('jobs_list', `SELECT * FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2`),
  // Newest first in one or two row states (queued's two), keyset-paginated by id.
  listByStatus: statement<[status: string, alsoStatus: string, beforeId: number, limit: number]>(
    'jobs_list_by_status',
    `SELECT * FROM jobs WHERE (status = $1 OR status = $2) AND id < $3 ORDER BY id DESC LIMIT $4`,
  ),
  // Add one transaction's change of the counts to slot $1, and announce its signals ($4: none, one or more payloads): the
  // last statement before the commit, one round trip for both.
  moveCounts: statement<[slot: number, jobs: number[], images: number[], payloads: string[]]>(
    'job_counts_move',
    `WITH moved AS (
       UPDATE job_counts SET ${jobStatuses.flatMap((status, i) => [
         `${status} = ${status} + ($2::bigint[])[${i + 1}]`,
         `${status}_images = ${status}_images + ($3::bigint[])[${i + 1}]`,
       ]).join(', ')}
        WHERE slot = $1)
     SELECT pg_notify('${SIGNAL_CHANNEL}', payload) FROM unnest($4::text[]) AS payload`,
  ),
  // Jobs and their images by state as clients see them: the sum of the slots, whatever the size of the queue.
  counts: statement<[]>(
    'job_counts_read',
    `SELECT ${jobStatuses.flatMap((status) => [`sum(${status})::bigint AS ${status}`, `sum(${status}_images)::bigint AS ${status}_images`]).join(', ')}
       FROM job_counts`,
  ),
  // Jobs waiting or running: the figure MAX_QUEUED_JOBS bounds.
  liveCount: statement<[]>('job_counts_live', `SELECT sum(queued + running)::bigint AS n FROM job_counts`),
  // Keep writers of counts out while every job is counted again; they wait, then add their change to the new counts.
  lockCounts: statement<[]>('job_counts_lock', `LOCK TABLE job_counts IN EXCLUSIVE MODE`),
  // Count every row again (a full scan) into slot 0, the other slots zeroed.
  recount: statement<[]>(
    'job_counts_recount',
    `UPDATE job_counts SET ${jobStatuses.flatMap((status) => [
      `${status} = CASE WHEN slot = 0 THEN c.${status} ELSE 0 END`,
      `${status}_images = CASE WHEN slot = 0 THEN c.${status}_images ELSE 0 END`,
    ]).join(', ')}
       FROM (SELECT ${jobStatuses.flatMap((status) => {
         const rows = status === 'queued' ? statusIn(['scheduled', 'queued']) : `status = '${status}'`;
         return [`count(*) FILTER (WHERE ${rows}) AS ${status}`, `coalesce(sum(image_count) FILTER (WHERE ${rows}), 0) AS ${status}_images`];
       }).join(', ')} FROM jobs) AS c`,
  ),
  // When the scheduler must next look for work: at once if a job is queued, else when the first scheduled one falls due.
  // Each side reads the head of its index (the claim's order, word for word, for jobs_claim_idx).
  nextRunAt: statement<[]>(
    'jobs_next_run_at',
    `SELECT least((SELECT run_at FROM jobs WHERE status = 'queued' ORDER BY priority DESC, run_at, id LIMIT 1),
                  (SELECT run_at FROM jobs WHERE status = 'scheduled' ORDER BY run_at LIMIT 1)) AS run_at`,
  ),
  // Which of the given temp-store keys a waiting or running job still owns (one index probe per key).
  liveKeysAmong: statement<[keys: string[]]>('jobs_live_keys', `SELECT input_key FROM jobs WHERE input_key = ANY($1::text[]) AND ${LIVE}`),
  // Which of the given ids still name a job (the sweeper's test for orphaned result folders).
  existingJobIds: statement<[ids: number[]]>('jobs_existing_ids', `SELECT id FROM jobs WHERE id = ANY($1::bigint[])`),
  // Up to $2 terminal jobs finished before $1, with their images and events (cascade).
  pruneExpired: statement<[olderThan: number, limit: number]>(
    'jobs_prune_expired',
    `DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE ${TERMINAL} AND finished_at < $1 LIMIT $2))
     RETURNING id, status, image_count`,
  ),
  // Up to $2 terminal jobs past the newest $1.
  pruneOverflow: statement<[keep: number, limit: number]>(
    'jobs_prune_overflow',
    `DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE ${TERMINAL} ORDER BY finished_at DESC, id DESC LIMIT $2 OFFSET $1))
     RETURNING id, status, image_count`,
  ),
  // Announce the signals of a transaction that moves no counts, one notification per payload, delivered at commit.
  notify: statement<[payloads: string[]]>('jobs_notify', `SELECT pg_notify('${SIGNAL_CHANNEL}', payload) FROM unnest($1::text[]) AS payload`),
  // Take the lock of `exclusively`'s name if no other session holds it.
  tryLock: statement<[name: string]>('jobs_try_lock', `SELECT pg_try_advisory_lock(hashtext($1)) AS locked`),
  // Give it back.
  unlock: statement<[name: string]>('jobs_unlock', `SELECT pg_advisory_unlock(hashtext($1))`),
};
