-- A large queue: counts, claims and the sweeper's look-ups no longer read
-- every queued job.
--
-- * `scheduled`: a queued job whose run_at is still to come is stored as
--   `scheduled` (clients still see `queued`), outside jobs_claim_idx; the
--   claim promotes due ones to `queued`. Queued rows not yet due are moved
--   to `scheduled` here, so a claim never takes a job before its run_at.
-- * `image_count` on jobs, and `job_counts` (jobs and images by state as
--   clients see them),
--   counted here from the rows carried over, then kept by the repository's
--   verbs in the transaction of each write.
-- * jobs_due_idx gives way to jobs_scheduled_idx; jobs_input_key_idx serves
--   the sweeper's question "which of these temp-file keys have a live job?".
--
-- A CHECK cannot be altered, so the three tables are rebuilt as in 0001
-- (the migrator's transaction cannot turn foreign keys off: the children are
-- rebuilt against the new jobs table and the old tables dropped children
-- first, so no ON DELETE CASCADE fires). The id sequence is carried over.
CREATE TABLE `__new_jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`status` text NOT NULL,
	`priority` integer DEFAULT 0 NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`options` text NOT NULL,
	`destination` text NOT NULL,
	`idempotency_key` text,
	`request_fingerprint` text,
	`input_key` text,
	`image_count` integer DEFAULT 0 NOT NULL,
	`run_at` integer NOT NULL,
	`lease_owner` text,
	`lease_expires_at` integer,
	`last_error_code` text,
	`last_error_message` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	CONSTRAINT "jobs_status_check" CHECK(status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled' OR status = 'scheduled'),
	CONSTRAINT "jobs_attempts_check" CHECK(attempts >= 0 AND max_attempts >= 1),
	CONSTRAINT "jobs_lease_check" CHECK((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
--> statement-breakpoint
INSERT INTO `__new_jobs` (`id`, `status`, `priority`, `attempts`, `max_attempts`, `options`, `destination`, `idempotency_key`, `request_fingerprint`, `input_key`, `image_count`, `run_at`, `lease_owner`, `lease_expires_at`, `last_error_code`, `last_error_message`, `created_at`, `updated_at`, `started_at`, `finished_at`)
SELECT `id`,
       CASE WHEN `status` = 'queued' AND `run_at` > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) THEN 'scheduled' ELSE `status` END,
       `priority`, `attempts`, `max_attempts`, `options`, `destination`, `idempotency_key`, `request_fingerprint`, `input_key`,
       (SELECT count(*) FROM `job_images` WHERE `job_images`.`job_id` = `jobs`.`id`),
       `run_at`, `lease_owner`, `lease_expires_at`, `last_error_code`, `last_error_message`, `created_at`, `updated_at`, `started_at`, `finished_at`
  FROM `jobs`;
--> statement-breakpoint
INSERT INTO `sqlite_sequence` (`name`, `seq`) SELECT '__new_jobs', coalesce((SELECT `seq` FROM `sqlite_sequence` WHERE `name` = 'jobs'), 0)
  WHERE NOT EXISTS (SELECT 1 FROM `sqlite_sequence` WHERE `name` = '__new_jobs');
--> statement-breakpoint
UPDATE `sqlite_sequence` SET `seq` = max(`seq`, coalesce((SELECT `seq` FROM `sqlite_sequence` WHERE `name` = 'jobs'), 0)) WHERE `name` = '__new_jobs';
--> statement-breakpoint
CREATE TABLE `__new_job_images` (
	`job_id` integer NOT NULL,
	`idx` integer NOT NULL,
	`original_name` text,
	`input_format` text NOT NULL,
	`width` integer NOT NULL,
	`height` integer NOT NULL,
	`pages` integer DEFAULT 1 NOT NULL,
	`input_bytes` integer NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`output_format` text,
	`output_width` integer,
	`output_height` integer,
	`output_bytes` integer,
	`scaled_to_fit` integer DEFAULT false NOT NULL,
	`location` text,
	`delivered_at` integer,
	PRIMARY KEY(`job_id`, `idx`),
	FOREIGN KEY (`job_id`) REFERENCES `__new_jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "job_images_status_check" CHECK(status = 'pending' OR status = 'delivered')
);
--> statement-breakpoint
INSERT INTO `__new_job_images` (`job_id`, `idx`, `original_name`, `input_format`, `width`, `height`, `pages`, `input_bytes`, `status`, `output_format`, `output_width`, `output_height`, `output_bytes`, `scaled_to_fit`, `location`, `delivered_at`) SELECT `job_id`, `idx`, `original_name`, `input_format`, `width`, `height`, `pages`, `input_bytes`, `status`, `output_format`, `output_width`, `output_height`, `output_bytes`, `scaled_to_fit`, `location`, `delivered_at` FROM `job_images`;
--> statement-breakpoint
CREATE TABLE `__new_job_events` (
	`id` integer PRIMARY KEY NOT NULL,
	`job_id` integer NOT NULL,
	`attempt` integer NOT NULL,
	`kind` text NOT NULL,
	`lease_owner` text,
	`error_code` text,
	`error_message` text,
	`at` integer NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `__new_jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "job_events_kind_check" CHECK(kind = 'started' OR kind = 'succeeded' OR kind = 'retrying' OR kind = 'failed' OR kind = 'cancelled' OR kind = 'returned' OR kind = 'lost')
);
--> statement-breakpoint
INSERT INTO `__new_job_events` (`id`, `job_id`, `attempt`, `kind`, `lease_owner`, `error_code`, `error_message`, `at`) SELECT `id`, `job_id`, `attempt`, `kind`, `lease_owner`, `error_code`, `error_message`, `at` FROM `job_events`;
--> statement-breakpoint
DROP TABLE `job_events`;
--> statement-breakpoint
DROP TABLE `job_images`;
--> statement-breakpoint
DROP TABLE `jobs`;
--> statement-breakpoint
ALTER TABLE `__new_jobs` RENAME TO `jobs`;
--> statement-breakpoint
ALTER TABLE `__new_job_images` RENAME TO `job_images`;
--> statement-breakpoint
ALTER TABLE `__new_job_events` RENAME TO `job_events`;
--> statement-breakpoint
CREATE INDEX `job_events_job_idx` ON `job_events` (`job_id`,`id`);
--> statement-breakpoint
CREATE INDEX `jobs_claim_idx` ON `jobs` ("priority" DESC,`run_at`,`id`) WHERE status = 'queued';
--> statement-breakpoint
CREATE INDEX `jobs_scheduled_idx` ON `jobs` (`run_at`) WHERE status = 'scheduled';
--> statement-breakpoint
CREATE INDEX `jobs_lease_idx` ON `jobs` (`lease_expires_at`) WHERE status = 'running';
--> statement-breakpoint
CREATE INDEX `jobs_finished_idx` ON `jobs` (`finished_at`) WHERE status = 'succeeded' OR status = 'failed' OR status = 'cancelled';
--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency_key_idx` ON `jobs` (`idempotency_key`) WHERE idempotency_key IS NOT NULL;
--> statement-breakpoint
CREATE INDEX `jobs_input_key_idx` ON `jobs` (`input_key`) WHERE input_key IS NOT NULL;
--> statement-breakpoint
CREATE TABLE `job_counts` (
	`status` text PRIMARY KEY NOT NULL,
	`jobs` integer DEFAULT 0 NOT NULL,
	`images` integer DEFAULT 0 NOT NULL,
	CONSTRAINT "job_counts_status_check" CHECK(status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled')
);
--> statement-breakpoint
-- One row per state as clients see it (scheduled counts as queued), counted from the rows carried over; the service only
-- ever updates them.
INSERT INTO `job_counts` (`status`, `jobs`, `images`)
SELECT s.`status`, count(j.`id`), coalesce(sum(j.`image_count`), 0)
  FROM (SELECT 'queued' AS `status` UNION ALL SELECT 'running' UNION ALL SELECT 'succeeded' UNION ALL SELECT 'failed' UNION ALL SELECT 'cancelled') AS s
  LEFT JOIN `jobs` AS j ON s.`status` = CASE j.`status` WHEN 'scheduled' THEN 'queued' ELSE j.`status` END
 GROUP BY s.`status`;
