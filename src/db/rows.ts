import { publicStatus, type EventKind, type ImageStatus, type StoredStatus } from '../jobs/states.js';
import type { Job, JobEvent, JobImage } from '../jobs/types.js';

/**
 * Rows as both backends' drivers return them (snake_case columns, times and
 * ids as numbers; a boolean as SQLite's 0/1 or PostgreSQL's own), and their
 * mapping to the store's types.
 */

export interface JobRow {
  id: number;
  status: StoredStatus;
  priority: number;
  attempts: number;
  max_attempts: number;
  options: string;
  destination: string;
  idempotency_key: string | null;
  request_fingerprint: string | null;
  input_key: string | null;
  image_count: number;
  run_at: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  last_error_code: string | null;
  last_error_message: string | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface ImageRow {
  job_id: number;
  idx: number;
  original_name: string | null;
  input_format: string;
  width: number;
  height: number;
  pages: number;
  input_bytes: number;
  status: ImageStatus;
  output_format: string | null;
  output_width: number | null;
  output_height: number | null;
  output_bytes: number | null;
  scaled_to_fit: boolean | number;
  location: string | null;
  delivered_at: number | null;
}

export interface EventRow {
  id: number;
  job_id: number;
  attempt: number;
  kind: EventKind;
  lease_owner: string | null;
  error_code: string | null;
  error_message: string | null;
  at: number;
}

export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    status: publicStatus(row.status),
    priority: row.priority,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    options: JSON.parse(row.options) as Record<string, unknown>,
    destination: JSON.parse(row.destination) as Record<string, unknown>,
    idempotencyKey: row.idempotency_key,
    inputKey: row.input_key,
    runAt: row.run_at,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    lastError: row.last_error_code === null ? null : { code: row.last_error_code, message: row.last_error_message ?? '' },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export function toImage(row: ImageRow): JobImage {
  return {
    jobId: row.job_id,
    index: row.idx,
    originalName: row.original_name,
    inputFormat: row.input_format,
    width: row.width,
    height: row.height,
    pages: row.pages,
    inputBytes: row.input_bytes,
    status: row.status,
    outputFormat: row.output_format,
    outputWidth: row.output_width,
    outputHeight: row.output_height,
    outputBytes: row.output_bytes,
    scaledToFit: Boolean(row.scaled_to_fit),
    location: row.location,
    deliveredAt: row.delivered_at,
  };
}

export function toEvent(row: EventRow): JobEvent {
  return {
    id: row.id,
    jobId: row.job_id,
    attempt: row.attempt,
    kind: row.kind,
    leaseOwner: row.lease_owner,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    at: row.at,
  };
}
