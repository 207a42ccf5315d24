-- Closed lists in CHECK constraints and the finished-jobs index are written
-- with OR instead of IN (...): SQLite evaluated an IN list of more than two
-- constants by building a temporary b-tree for every row written.
--
-- A CHECK cannot be altered, so the three tables are rebuilt. This runs in
-- the migrator's transaction, where PRAGMA foreign_keys cannot be turned
-- off: the new child tables reference the new jobs table from the start and
-- the old tables are dropped children first, so no ON DELETE CASCADE fires;
-- renaming __new_jobs to jobs carries the children's references along.
-- jobs.id is AUTOINCREMENT: its sequence is carried over, so no id repeats.
CREATE TABLE `__new_jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`status` text NOT NULL,
	`priority` integer DEFAULT 0 NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`options` text NOT NULL,
	`destination` text NOT NULL,
	`idempotency_key` text,
	`input_key` text,
	`run_at` integer NOT NULL,
	`lease_owner` text,
	`lease_expires_at` integer,
	`last_error_code` text,
	`last_error_message` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	CONSTRAINT "jobs_status_check" CHECK(status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled'),
	CONSTRAINT "jobs_attempts_check" CHECK(attempts >= 0 AND max_attempts >= 1),
	CONSTRAINT "jobs_lease_check" CHECK((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
--> statement-breakpoint
INSERT INTO `__new_jobs` (`id`, `status`, `priority`, `attempts`, `max_attempts`, `options`, `destination`, `idempotency_key`, `input_key`, `run_at`, `lease_owner`, `lease_expires_at`, `last_error_code`, `last_error_message`, `created_at`, `updated_at`, `started_at`, `finished_at`) SELECT `id`, `status`, `priority`, `attempts`, `max_attempts`, `options`, `destination`, `idempotency_key`, `input_key`, `run_at`, `lease_owner`, `lease_expires_at`, `last_error_code`, `last_error_message`, `created_at`, `updated_at`, `started_at`, `finished_at` FROM `jobs`;
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
CREATE INDEX `jobs_due_idx` ON `jobs` (`run_at`) WHERE status = 'queued';
--> statement-breakpoint
CREATE INDEX `jobs_lease_idx` ON `jobs` (`lease_expires_at`) WHERE status = 'running';
--> statement-breakpoint
CREATE INDEX `jobs_finished_idx` ON `jobs` (`finished_at`) WHERE status = 'succeeded' OR status = 'failed' OR status = 'cancelled';
--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency_key_idx` ON `jobs` (`idempotency_key`) WHERE idempotency_key IS NOT NULL;
