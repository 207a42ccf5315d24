import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgTable, primaryKey, smallint, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { EventKind, ImageStatus, StoredStatus, terminalStatuses, type JobStatus } from '../../jobs/states.js';

/** `column IN ('a', 'b', …)`: a closed list of values (PostgreSQL, unlike SQLite, checks one without a temporary table). */
const oneOf = (column: string, values: readonly string[]): string => `${column} IN (${values.map((value) => `'${value}'`).join(', ')})`;

/** Epoch milliseconds: past 2^31, within 2^53, so read as numbers. */
const millis = (name: string) => bigint(name, { mode: 'number' });

/**
 * The PostgreSQL twin of the SQLite schema (`src/db/sqlite/schema.ts`): the same
 * tables, columns, CHECKed states and partial indexes, so the two backends
 * give the same answers and `psql` reads what `sqlite3` reads. Times are
 * integer milliseconds since the Unix epoch (UTC); JSON stays text, as on
 * SQLite, so a job reads back exactly as it was submitted.
 */
export const jobs = pgTable(
  'jobs',
  {
    /** An identity: a sequence never hands out an id twice, even after its job is pruned. */
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** The row's state (`StoredStatus`): the API's, or `scheduled`, which the API shows as `queued`. */
    status: text('status').$type<StoredStatus>().notNull(),
    priority: integer('priority').notNull().default(0),
    /** Attempts started so far (the running one included). */
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull(),
    /** Conversion options as JSON. */
    options: text('options').notNull(),
    /** Where results go, as JSON. */
    destination: text('destination').notNull(),
    idempotencyKey: text('idempotency_key'),
    /** SHA-256 of what the submission asked for, to tell a repeat from another request reusing its key. */
    requestFingerprint: text('request_fingerprint'),
    /** The key its files carry in the temp store (`src/storage/tempStore.ts`). */
    inputKey: text('input_key'),
    /** How many images the job has (set once, at insert): what `job_counts` adds up by state. */
    imageCount: integer('image_count').notNull().default(0),
    runAt: millis('run_at').notNull(),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: millis('lease_expires_at'),
    lastErrorCode: text('last_error_code'),
    lastErrorMessage: text('last_error_message'),
    createdAt: millis('created_at').notNull(),
    updatedAt: millis('updated_at').notNull(),
    startedAt: millis('started_at'),
    finishedAt: millis('finished_at'),
  },
  (t) => [
    check('jobs_status_check', sql.raw(oneOf(t.status.name, Object.values(StoredStatus)))),
    check('jobs_attempts_check', sql.raw(`${t.attempts.name} >= 0 AND ${t.maxAttempts.name} >= 1`)),
    check(
      'jobs_lease_check',
      sql.raw(`(${t.status.name} = 'running') = (${t.leaseOwner.name} IS NOT NULL AND ${t.leaseExpiresAt.name} IS NOT NULL)`),
    ),
    /** The claim: due jobs, highest priority first, then oldest runAt. Only due jobs are in it (`scheduled` ones
     *  are not), so a claim reads the rows it takes and no others. */
    index('jobs_claim_idx').on(sql`${t.priority} DESC`, t.runAt, t.id).where(sql`status = 'queued'`),
    /** Jobs waiting for a later runAt, soonest first: the claim's promotion and `nextRunAt` read its head only. */
    index('jobs_scheduled_idx').on(t.runAt).where(sql`status = 'scheduled'`),
    /** Lease expiry checks scan running jobs only. */
    index('jobs_lease_idx').on(t.leaseExpiresAt).where(sql`status = 'running'`),
    /** The sweeper: terminal jobs by age. */
    index('jobs_finished_idx').on(t.finishedAt).where(sql.raw(oneOf('status', terminalStatuses))),
    uniqueIndex('jobs_idempotency_key_idx').on(t.idempotencyKey).where(sql`idempotency_key IS NOT NULL`),
    /** The sweeper asks which of the temp files it finds still have a live job, key by key. */
    index('jobs_input_key_idx').on(t.inputKey).where(sql`input_key IS NOT NULL`),
  ],
);

/** Rows `job_counts` is spread over; a transaction moves one, chosen at random. */
export const COUNT_SLOTS = 16;

/** A `job_counts` column: jobs, or their images, in one state as clients see it. */
const tally = (name: string) => bigint(name, { mode: 'number' }).notNull().default(0);

/**
 * Jobs and their images by state as clients see them (`scheduled` rows count
 * as `queued`), kept by the store's verbs in the transaction of each write,
 * so counts are read in O(1) however large the queue.
 *
 * SQLite keeps one row per state; here every transaction of every instance
 * would queue on those few rows until its commit. So the counts are spread
 * over COUNT_SLOTS rows, a transaction adds its whole change to one of them
 * (one row lock, taken in its last statement: two writers never deadlock on
 * counts, and wait on each other only when they pick the same slot), and a
 * read sums the slots. A state is a pair of columns rather than a row of its
 * own so that a transaction moving jobs between states still locks one row.
 */
export const jobCounts = pgTable(
  'job_counts',
  {
    slot: smallint('slot').primaryKey(),
    queued: tally('queued'),
    running: tally('running'),
    succeeded: tally('succeeded'),
    failed: tally('failed'),
    cancelled: tally('cancelled'),
    queuedImages: tally('queued_images'),
    runningImages: tally('running_images'),
    succeededImages: tally('succeeded_images'),
    failedImages: tally('failed_images'),
    cancelledImages: tally('cancelled_images'),
  } satisfies Record<JobStatus | `${JobStatus}Images` | 'slot', unknown>,
  (t) => [check('job_counts_slot_check', sql.raw(`${t.slot.name} >= 0 AND ${t.slot.name} < ${COUNT_SLOTS}`))],
);

export const jobImages = pgTable(
  'job_images',
  {
    jobId: bigint('job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    /** 0-based, in upload order. */
    index: integer('idx').notNull(),
    /** The client's filename: metadata only, never used as a path. */
    originalName: text('original_name'),
    inputFormat: text('input_format').notNull(),
    width: integer('width').notNull(),
    height: integer('height').notNull(),
    pages: integer('pages').notNull().default(1),
    inputBytes: bigint('input_bytes', { mode: 'number' }).notNull(),
    status: text('status').$type<ImageStatus>().notNull().default(ImageStatus.pending),
    outputFormat: text('output_format'),
    outputWidth: integer('output_width'),
    outputHeight: integer('output_height'),
    outputBytes: bigint('output_bytes', { mode: 'number' }),
    /** True when the output was scaled down to fit the output format's size limit. */
    scaledToFit: boolean('scaled_to_fit').notNull().default(false),
    /** Where the result went: a local path under the output store, or the destination URL without its query. */
    location: text('location'),
    deliveredAt: millis('delivered_at'),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.index] }),
    check('job_images_status_check', sql.raw(oneOf(t.status.name, Object.values(ImageStatus)))),
  ],
);

/** One row per attempt start and per attempt end. */
export const jobEvents = pgTable(
  'job_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    jobId: bigint('job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    kind: text('kind').$type<EventKind>().notNull(),
    leaseOwner: text('lease_owner'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    at: millis('at').notNull(),
  },
  (t) => [
    check('job_events_kind_check', sql.raw(oneOf(t.kind.name, Object.values(EventKind)))),
    index('job_events_job_idx').on(t.jobId, t.id),
  ],
);
