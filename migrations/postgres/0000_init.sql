CREATE TABLE "job_counts" (
	"slot" smallint PRIMARY KEY NOT NULL,
	"queued" bigint DEFAULT 0 NOT NULL,
	"running" bigint DEFAULT 0 NOT NULL,
	"succeeded" bigint DEFAULT 0 NOT NULL,
	"failed" bigint DEFAULT 0 NOT NULL,
	"cancelled" bigint DEFAULT 0 NOT NULL,
	"queued_images" bigint DEFAULT 0 NOT NULL,
	"running_images" bigint DEFAULT 0 NOT NULL,
	"succeeded_images" bigint DEFAULT 0 NOT NULL,
	"failed_images" bigint DEFAULT 0 NOT NULL,
	"cancelled_images" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "job_counts_slot_check" CHECK (slot >= 0 AND slot < 16)
);
--> statement-breakpoint
CREATE TABLE "job_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "job_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"job_id" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"kind" text NOT NULL,
	"lease_owner" text,
	"error_code" text,
	"error_message" text,
	"at" bigint NOT NULL,
	CONSTRAINT "job_events_kind_check" CHECK (kind IN ('started', 'succeeded', 'retrying', 'failed', 'cancelled', 'returned', 'lost'))
);
--> statement-breakpoint
CREATE TABLE "job_images" (
	"job_id" bigint NOT NULL,
	"idx" integer NOT NULL,
	"original_name" text,
	"input_format" text NOT NULL,
	"width" integer NOT NULL,
	"height" integer NOT NULL,
	"pages" integer DEFAULT 1 NOT NULL,
	"input_bytes" bigint NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"output_format" text,
	"output_width" integer,
	"output_height" integer,
	"output_bytes" bigint,
	"scaled_to_fit" boolean DEFAULT false NOT NULL,
	"location" text,
	"delivered_at" bigint,
	CONSTRAINT "job_images_job_id_idx_pk" PRIMARY KEY("job_id","idx"),
	CONSTRAINT "job_images_status_check" CHECK (status IN ('pending', 'delivered'))
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "jobs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"status" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer NOT NULL,
	"options" text NOT NULL,
	"destination" text NOT NULL,
	"idempotency_key" text,
	"request_fingerprint" text,
	"input_key" text,
	"image_count" integer DEFAULT 0 NOT NULL,
	"run_at" bigint NOT NULL,
	"lease_owner" text,
	"lease_expires_at" bigint,
	"last_error_code" text,
	"last_error_message" text,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"started_at" bigint,
	"finished_at" bigint,
	CONSTRAINT "jobs_status_check" CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'scheduled')),
	CONSTRAINT "jobs_attempts_check" CHECK (attempts >= 0 AND max_attempts >= 1),
	CONSTRAINT "jobs_lease_check" CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
--> statement-breakpoint
ALTER TABLE "job_events" ADD CONSTRAINT "job_events_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_images" ADD CONSTRAINT "job_images_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "job_events_job_idx" ON "job_events" USING btree ("job_id","id");--> statement-breakpoint
CREATE INDEX "jobs_claim_idx" ON "jobs" USING btree ("priority" DESC,"run_at","id") WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX "jobs_scheduled_idx" ON "jobs" USING btree ("run_at") WHERE status = 'scheduled';--> statement-breakpoint
CREATE INDEX "jobs_lease_idx" ON "jobs" USING btree ("lease_expires_at") WHERE status = 'running';--> statement-breakpoint
CREATE INDEX "jobs_finished_idx" ON "jobs" USING btree ("finished_at") WHERE status IN ('succeeded', 'failed', 'cancelled');--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_idempotency_key_idx" ON "jobs" USING btree ("idempotency_key") WHERE idempotency_key IS NOT NULL;--> statement-breakpoint
CREATE INDEX "jobs_input_key_idx" ON "jobs" USING btree ("input_key") WHERE input_key IS NOT NULL;--> statement-breakpoint
-- Written by hand (drizzle-kit does not seed rows): the COUNT_SLOTS rows of job_counts, all zero; the store only ever
-- updates them.
INSERT INTO "job_counts" ("slot") SELECT generate_series(0, 15);
