CREATE TABLE `job_events` (
	`id` integer PRIMARY KEY NOT NULL,
	`job_id` integer NOT NULL,
	`attempt` integer NOT NULL,
	`kind` text NOT NULL,
	`lease_owner` text,
	`error_code` text,
	`error_message` text,
	`at` integer NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "job_events_kind_check" CHECK(kind IN ('started', 'succeeded', 'retrying', 'failed', 'cancelled', 'returned', 'lost'))
);
--> statement-breakpoint
CREATE INDEX `job_events_job_idx` ON `job_events` (`job_id`,`id`);--> statement-breakpoint
CREATE TABLE `job_images` (
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
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "job_images_status_check" CHECK(status IN ('pending', 'delivered'))
);
--> statement-breakpoint
CREATE TABLE `jobs` (
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
	CONSTRAINT "jobs_status_check" CHECK(status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	CONSTRAINT "jobs_attempts_check" CHECK(attempts >= 0 AND max_attempts >= 1),
	CONSTRAINT "jobs_lease_check" CHECK((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
--> statement-breakpoint
CREATE INDEX `jobs_claim_idx` ON `jobs` ("priority" DESC,`run_at`,`id`) WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX `jobs_due_idx` ON `jobs` (`run_at`) WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX `jobs_lease_idx` ON `jobs` (`lease_expires_at`) WHERE status = 'running';--> statement-breakpoint
CREATE INDEX `jobs_finished_idx` ON `jobs` (`finished_at`) WHERE status IN ('succeeded', 'failed', 'cancelled');--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency_key_idx` ON `jobs` (`idempotency_key`) WHERE idempotency_key IS NOT NULL;