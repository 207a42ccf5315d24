import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobStatus } from '../src/jobs/states.js';
import { createJobWatch } from '../src/jobs/jobWatch.js';
import { createMetrics } from '../src/ops/metrics.js';
import { createRuntimeMonitor } from '../src/ops/runtimeMonitor.js';
import { createTempStore } from '../src/storage/tempStore.js';
import { jobInState, testDb } from './support/db.js';
import { withoutInstance } from './support/metrics.js';

const image = { originalName: 'a.png', inputFormat: 'png', width: 8, height: 8, pages: 1, inputBytes: 100 };
const runtime = createRuntimeMonitor();
afterEach(() => runtime.stop());

/** The instance id the tests' metrics carry. */
const INSTANCE = 'test-host:1:0a1b2c3d';

function setup() {
  const { dir, db, store } = testDb();
  const tempStore = createTempStore(path.join(dir, 'tmp'));
  runtime.start();
  const metrics = createMetrics({ store, tempStore, runtime, jobWatch: createJobWatch(), instanceId: INSTANCE, log: pino({ level: 'silent' }) });
  const job = (status: JobStatus) => jobInState(db, store, status, { finishedAt: Date.now(), job: { images: [image, image] } });
  return { db, store, tempStore, metrics, job };
}

/** The value of one sample line (`name{labels} value`) of a scrape, read past the `instance_id` every series carries. */
function sample(text: string, series: string): number {
  const line = withoutInstance(text, INSTANCE).split('\n').find((candidate) => candidate.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series} in the scrape`);
  return Number(line.slice(series.length + 1));
}

describe('metrics', () => {
  it('exposes jobs by status, queue depth and images as the database holds them at scrape time', async () => {
    const t = setup();
    for (const status of ['queued', 'queued', 'running', 'succeeded', 'failed'] as const) await t.job(status);

    const text = await t.metrics.registry.metrics();

    // Every series says which instance answered (`withoutInstance` checks); the queue's figures are the shared database's.
    expect(sample(text, 'image_jobs_jobs{status="queued"}')).toBe(2);
    expect(sample(text, 'image_jobs_jobs{status="running"}')).toBe(1);
    expect(sample(text, 'image_jobs_jobs{status="succeeded"}')).toBe(1);
    expect(sample(text, 'image_jobs_jobs{status="failed"}')).toBe(1);
    expect(sample(text, 'image_jobs_jobs{status="cancelled"}')).toBe(0);
    expect(sample(text, 'image_jobs_queue_depth')).toBe(3);
    expect(sample(text, 'image_jobs_images{state="pending"}')).toBe(6);
    expect(sample(text, 'image_jobs_images{state="completed"}')).toBe(2);
  });

  it('counts attempts by outcome, job durations, and the images and bytes of succeeded jobs', async () => {
    const t = setup();
    const job = await t.job('succeeded');
    t.db.prepare(`UPDATE job_images SET status = 'delivered', output_bytes = 40 WHERE job_id = ?`).run(job.id);

    await t.metrics.recordAttemptEnd({ job, attempt: 1, outcome: 'retrying', errorCode: 'network', durationMs: 200 });
    await t.metrics.recordAttemptEnd({ job, attempt: 2, outcome: 'succeeded', errorCode: null, durationMs: 1_500 });
    const text = await t.metrics.registry.metrics();

    expect(sample(text, 'image_jobs_attempts_total{outcome="retrying"}')).toBe(1);
    expect(sample(text, 'image_jobs_attempts_total{outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'image_jobs_attempt_duration_seconds_count{outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'image_jobs_attempt_duration_seconds_sum{outcome="succeeded"}')).toBe(1.5);
    expect(sample(text, 'image_jobs_job_duration_seconds_count{status="succeeded"}')).toBe(1);
    expect(sample(text, 'image_jobs_images_processed_total')).toBe(2);
    expect(sample(text, 'image_jobs_image_input_bytes_total')).toBe(200);
    expect(sample(text, 'image_jobs_image_output_bytes_total')).toBe(80);
  });

  it('never lets a metrics failure escape into the scheduler', async () => {
    const t = setup();
    const job = await t.job('succeeded');
    t.db.close();
    await expect(t.metrics.recordAttemptEnd({ job, attempt: 1, outcome: 'succeeded', errorCode: null, durationMs: 5 })).resolves.toBeUndefined();
  });

  it('exposes temp files, sweeps, V8 allocation, sharp and the default process metrics', async () => {
    const t = setup();
    const key = t.tempStore.newKey();
    fs.writeFileSync(t.tempStore.inputPath(key, 0), Buffer.alloc(1000));
    fs.writeFileSync(t.tempStore.outputPath(key, 0, 'webp'), Buffer.alloc(234));
    t.metrics.recordSweep({
      at: Date.now(), durationMs: 12, jobsPruned: 3, outputFoldersRemoved: 2, tempFilesRemoved: 1,
      tempBytesRemoved: 99, removalFailures: 0, walCheckpoint: { busy: 0, log: 0, checkpointed: 0 }, skipped: false,
    });
    t.metrics.recordSweepFailure();

    const text = await t.metrics.registry.metrics();

    expect(sample(text, 'image_jobs_temp_files')).toBe(2);
    expect(sample(text, 'image_jobs_temp_bytes')).toBe(1234);
    expect(sample(text, 'image_jobs_sweeps_total{outcome="completed"}')).toBe(1);
    expect(sample(text, 'image_jobs_sweeps_total{outcome="failed"}')).toBe(1);
    expect(sample(text, 'image_jobs_sweep_removed_total{kind="jobs"}')).toBe(3);
    expect(sample(text, 'image_jobs_sweep_removed_total{kind="output_folders"}')).toBe(2);
    expect(sample(text, 'image_jobs_sweep_removed_total{kind="temp_files"}')).toBe(1);
    expect(sample(text, 'image_jobs_sweep_temp_bytes_removed_total')).toBe(99);
    expect(sample(text, 'image_jobs_sweep_duration_seconds_count')).toBe(1);
    expect(sample(text, 'image_jobs_v8_heap_allocated_bytes_total')).toBeGreaterThan(0);
    expect(sample(text, 'image_jobs_sharp_tasks{state="queued"}')).toBe(0);
    expect(sample(text, 'image_jobs_libvips_memory_bytes')).toBeGreaterThanOrEqual(0);
    for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(withoutInstance(text)).toMatch(new RegExp(`^${name} `, 'm'));
    }
  });

  it('gives each service a registry of its own, so two can live in one process', async () => {
    const first = setup();
    const second = setup();
    await first.job('queued');
    expect(sample(await first.metrics.registry.metrics(), 'image_jobs_queue_depth')).toBe(1);
    expect(sample(await second.metrics.registry.metrics(), 'image_jobs_queue_depth')).toBe(0);
  });
});
