import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { EventKind, ImageStatus, JobStatus, StoredStatus, terminalStatuses } from '../../jobs/states.js';

/**
 * `column = 'a' OR column = 'b' …`: a closed list of values, written out
 * rather than as `IN (…)`. SQLite evaluates an IN list of more than two
 * constants in a CHECK or a partial index's WHERE by building a temporary
 * b-tree, once for every row written: three per job update and one per
 * event (measured: 43 → 30 µs of SQLite per job through the queue).
 */
const oneOf = (column: string, values: readonly string[]): string => values.map((value) => `${column} = '${value}'`).join(' OR ');

/**
 * Times are integer milliseconds since the Unix epoch (UTC).
 *
 * Indexes are partial where they can be, so a row is in an index only while
 * its state needs it. There is deliberately no index on `status` alone: every
 * transition would rewrite it (measured: a quarter of queue throughput), and
 * the listings it would serve read a table the sweeper keeps bounded
 * (MAX_QUEUED_JOBS live plus MAX_COMPLETED_JOBS terminal rows), newest first
 * along the primary key.
 */
export const jobs = sqliteTable(
  'jobs',
  {
    /** AUTOINCREMENT: an id is never handed out twice, even after its job is pruned. */
    id: integer('id').primaryKey({ autoIncrement: true }),
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
    /**
     * SHA-256 of what the submission asked for (options, destination, each
     * image's bytes), to tell a repeat of it from another request reusing its
     * idempotency key. Null when the job has no key.
     */
    requestFingerprint: text('request_fingerprint'),
    /** The key its files carry in the temp store (`src/storage/tempStore.ts`). */
    inputKey: text('input_key'),
    /** How many images the job has (set once, at insert): what `job_counts` adds up by state. */
    imageCount: integer('image_count').notNull().default(0),
    runAt: integer('run_at').notNull(),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: integer('lease_expires_at'),
    lastErrorCode: text('last_error_code'),
    lastErrorMessage: text('last_error_message'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
  },
  (t) => [
    check('jobs_status_check', sql.raw(oneOf(t.status.name, Object.values(StoredStatus)))),
    check('jobs_attempts_check', sql.raw(`${t.attempts.name} >= 0 AND ${t.maxAttempts.name} >= 1`)),
    check(
      'jobs_lease_check',
      sql.raw(`(${t.status.name} = 'running') = (${t.leaseOwner.name} IS NOT NULL AND ${t.leaseExpiresAt.name} IS NOT NULL)`),
    ),
    /** The claim: due jobs, highest priority first, then oldest runAt (named by the claim's INDEXED BY). Only
     *  due jobs are in it (`scheduled` ones are not), so a claim reads the rows it takes and no others. */
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

/**
 * Jobs and their images by state as clients see them (`scheduled` rows count
 * as `queued`): one row per `JobStatus`, moved by the job repository's verbs
 * in the transaction of each insert, state change and delete, one statement
 * per transaction, so counts are read in O(1) however large the queue.
 * Triggers would keep them without the verbs' help, but any trigger on
 * `jobs` made each job through the queue cost about a quarter more CPU
 * (measured). A row changed by hand is counted again at the next start
 * (`recountJobs`).
 */
export const jobCounts = sqliteTable(
  'job_counts',
  {
    status: text('status').$type<JobStatus>().primaryKey(),
    jobs: integer('jobs').notNull().default(0),
    /** The sum of these jobs' `image_count`. */
    images: integer('images').notNull().default(0),
  },
  (t) => [check('job_counts_status_check', sql.raw(oneOf(t.status.name, Object.values(JobStatus))))],
);

export const jobImages = sqliteTable(
  'job_images',
  {
    jobId: integer('job_id')
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
    inputBytes: integer('input_bytes').notNull(),
    status: text('status').$type<ImageStatus>().notNull().default(ImageStatus.pending),
    outputFormat: text('output_format'),
    outputWidth: integer('output_width'),
    outputHeight: integer('output_height'),
    outputBytes: integer('output_bytes'),
    /** 1 when the output was scaled down to fit the output format's size limit. */
    scaledToFit: integer('scaled_to_fit', { mode: 'boolean' }).notNull().default(false),
    /** Where the result went: a local path under the output store, or the destination URL without its query. */
    location: text('location'),
    deliveredAt: integer('delivered_at'),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.index] }),
    check('job_images_status_check', sql.raw(oneOf(t.status.name, Object.values(ImageStatus)))),
  ],
);

/** One row per attempt start and per attempt end. */
export const jobEvents = sqliteTable(
  'job_events',
  {
    /** Plain rowid: events go with their job, so reuse after a prune is harmless and saves a write per event. */
    id: integer('id').primaryKey(),
    jobId: integer('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    kind: text('kind').$type<EventKind>().notNull(),
    leaseOwner: text('lease_owner'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    at: integer('at').notNull(),
  },
  (t) => [
    check('job_events_kind_check', sql.raw(oneOf(t.kind.name, Object.values(EventKind)))),
    index('job_events_job_idx').on(t.jobId, t.id),
  ],
);

export type JobRow = typeof jobs.$inferSelect;
export type JobImageRow = typeof jobImages.$inferSelect;
export type JobEventRow = typeof jobEvents.$inferSelect;
