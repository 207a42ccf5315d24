import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../src/jobs/states.js';
import type { JobError } from '../src/jobs/types.js';
import { TEMP_GRACE_MS } from '../src/ops/sweeper.js';
import { withoutInstance } from './support/metrics.js';
import { startService, type RunningService } from './support/service.js';
import { serviceBackends } from './support/serviceBackends.js';
import { waitFor } from './support/wait.js';

const image = { originalName: 'a.png', inputFormat: 'png', width: 8, height: 8, pages: 1, inputBytes: 100 };
const HOUR = 3_600_000;

/** Only the tests' own sweeps run: the sweeper is scheduled for New Year's midnight. */
const QUIET_SWEEPER = { SWEEP_CRON: '0 0 1 1 *' };

/** Puts a job with `images` images in any state; queued ones are due in an hour so the scheduler leaves them be. */
function arrange(s: RunningService, status: JobStatus, images: number, finishedAt = Date.now(), lastError?: JobError) {
  return s.rows.jobInState(status, { finishedAt, lastError, job: { images: Array.from({ length: images }, () => image), runAt: Date.now() + HOUR } });
}

// The assertions check the bodies' shape; typing them as well would only repeat it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: Json; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe.each(serviceBackends)('operations on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    const start = (env: Record<string, string> = {}) => backend.start({ ...QUIET_SWEEPER, ...env });

    describe('GET /debug/memory-stats', () => {
      it('answers the original memory_stats fields, with image counts equal to what the database holds', async () => {
        const s = await start();
        await arrange(s, 'queued', 3);
        await arrange(s, 'queued', 1);
        await arrange(s, 'running', 2);
        await arrange(s, 'succeeded', 4);
        await arrange(s, 'succeeded', 1);
        await arrange(s, 'failed', 5);
        await arrange(s, 'cancelled', 6);

        const { status, body } = await json(`${s.url}/debug/memory-stats`);

        expect(status).toBe(200);
        expect(body.instance_id).toBe(s.service.jobs.scheduler.owner); // which instance answered
        const stats = body.memory_stats;
        expect(Object.keys(stats).sort()).toEqual(
          ['alloc_mb', 'completed_images', 'num_gc', 'num_goroutines', 'pending_images', 'sys_mb', 'timestamp', 'total_alloc_mb'].sort(),
        );
        const { imageCounts } = await s.rows.countedThrough();
        expect(stats.pending_images).toBe(6);
        expect(stats.pending_images).toBe(imageCounts.pending);
        expect(stats.completed_images).toBe(5);
        expect(stats.completed_images).toBe(imageCounts.completed);
        expect(stats.alloc_mb).toBeGreaterThan(1);
        expect(stats.sys_mb).toBeGreaterThan(stats.alloc_mb);
        expect(stats.total_alloc_mb).toBeGreaterThanOrEqual(stats.alloc_mb);
        expect(Number.isInteger(stats.num_gc)).toBe(true);
        expect(stats.num_goroutines).toBeGreaterThanOrEqual(1); // the listening socket at least
        expect(stats.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        expect(Math.abs(Date.parse(stats.timestamp) - Date.now())).toBeLessThan(5_000);
      });

      it('adds Node\'s own figures: memory, sharp, temp files, running jobs, event-loop delay, uptime, last sweep', async () => {
        const s = await start();
        const key = path.join(s.config.tmpDir, '0b7c1f7e-2f6a-4c56-9d0e-222222222222');
        fs.writeFileSync(`${key}.0`, Buffer.alloc(700));
        fs.writeFileSync(`${key}.1`, Buffer.alloc(300));

        const { body } = await json(`${s.url}/debug/memory-stats`);

        const node = body.node;
        expect(node.rss_bytes).toBeGreaterThan(node.heap_used_bytes);
        expect(node.heap_total_bytes).toBeGreaterThanOrEqual(node.heap_used_bytes);
        expect(node.external_bytes).toBeGreaterThanOrEqual(node.array_buffers_bytes);
        expect(node.sharp).toMatchObject({
          libvips_memory_mb: { current: expect.any(Number), high: expect.any(Number), max: expect.any(Number) },
          cache_items: { current: expect.any(Number), max: expect.any(Number) },
          queued_tasks: 0,
          processing_tasks: 0,
          concurrency: expect.any(Number),
        });
        expect(node.temp_files).toEqual({ jobs: 1, files: 2, bytes: 1000 });
        expect(node.running_jobs).toBe(0);
        expect(Object.keys(node.event_loop_delay_ms).sort()).toEqual(['max', 'mean', 'p50', 'p90', 'p99']);
        expect(node.uptime_s).toBeGreaterThanOrEqual(0);
        expect(node.last_sweep).toBeNull();
      });
    });

    describe('POST /debug/memory/cleanup-images', () => {
      it('runs the sweep now and answers what it removed; memory-stats then shows it as the last sweep', async () => {
        const s = await start({ MAX_COMPLETED_JOBS: '2', COMPLETED_TTL_MS: String(HOUR) });
        const expired = await arrange(s, 'succeeded', 2, Date.now() - 2 * HOUR);
        await arrange(s, 'failed', 1, Date.now() - 3 * HOUR);
        for (let i = 0; i < 3; i += 1) await arrange(s, 'succeeded', 1, Date.now() - i * 1_000);
        await arrange(s, 'queued', 1);
        fs.mkdirSync(path.join(s.config.outputDir, String(expired.id)), { recursive: true });
        const orphan = path.join(s.config.tmpDir, '0b7c1f7e-2f6a-4c56-9d0e-111111111111.0');
        fs.writeFileSync(orphan, Buffer.alloc(2048));
        const old = new Date(Date.now() - 2 * TEMP_GRACE_MS);
        fs.utimesSync(orphan, old, old);

        const { status, body } = await json(`${s.url}/debug/memory/cleanup-images`, { method: 'POST' });

        expect(status).toBe(200);
        expect(body.sweep).toMatchObject({
          jobs_pruned: 3,
          output_folders_removed: 1,
          temp_files_removed: 1,
          temp_bytes_removed: 2048,
          removal_failures: 0,
          // SQLite's write-ahead log is truncated by the sweep; PostgreSQL has none to truncate.
          wal_checkpoint: backend.name === 'sqlite' ? { busy: false } : null,
        });
        expect(body.sharp_cache).toMatchObject({ items_released: expect.any(Number), libvips_memory_mb_after: expect.any(Number) });
        expect(body.memory_stats.completed_images).toBe(2);
        const { byStatus } = await s.rows.countedThrough();
        expect(byStatus.succeeded + byStatus.failed + byStatus.cancelled).toBe(2);
        expect(fs.existsSync(orphan)).toBe(false);
        expect(fs.existsSync(path.join(s.config.outputDir, String(expired.id)))).toBe(false);

        const stats = await json(`${s.url}/debug/memory-stats`);
        expect(stats.body.node.last_sweep).toEqual(body.sweep);
      });

      it('answers 405 to a GET, and runs nothing', async () => {
        const s = await start();
        const response = await fetch(`${s.url}/debug/memory/cleanup-images`);
        expect(response.status).toBe(405);
        expect(response.headers.get('allow')).toBe('POST');
        expect(s.service.ops.sweeper.lastRun).toBeNull();
      });
    });

    describe('GET /metrics', () => {
      it('answers the Prometheus text format with the service\'s metrics and the process defaults', async () => {
        const s = await start();
        await arrange(s, 'queued', 1);
        await arrange(s, 'failed', 1);
        await fetch(`${s.url}/debug/memory/cleanup-images`, { method: 'POST' });

        const response = await fetch(`${s.url}/metrics`);
        // Every series names the instance that answered: the scheduler's owner id.
        const text = withoutInstance(await response.text(), s.service.jobs.scheduler.owner);

        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        for (const name of [
          'image_jobs_jobs', 'image_jobs_queue_depth', 'image_jobs_images', 'image_jobs_attempts_total', 'image_jobs_attempt_duration_seconds',
          'image_jobs_job_duration_seconds', 'image_jobs_images_processed_total', 'image_jobs_image_input_bytes_total',
          'image_jobs_image_output_bytes_total', 'image_jobs_temp_files', 'image_jobs_temp_bytes', 'image_jobs_sweeps_total',
          'image_jobs_sweep_removed_total', 'image_jobs_sweep_duration_seconds', 'image_jobs_v8_heap_allocated_bytes_total',
          'image_jobs_sharp_tasks', 'image_jobs_libvips_memory_bytes', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes',
          'nodejs_external_memory_bytes',
        ]) {
          expect(text).toContain(`# TYPE ${name} `);
        }
        expect(text).toMatch(/^image_jobs_jobs\{status="queued"\} 1$/m);
        expect(text).toMatch(/^image_jobs_jobs\{status="failed"\} 1$/m);
        expect(text).toMatch(/^image_jobs_queue_depth 1$/m);
        expect(text).toMatch(/^image_jobs_sweeps_total\{outcome="completed"\} 1$/m);
      });

      it('counts a real job\'s attempt, images and bytes once the scheduler ends it', async () => {
        const s = await start();
        const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 10, g: 200, b: 90 } } }).png().toBuffer();
        const submitted = await json(`${s.url}/jobs`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
        expect(submitted.status).toBe(202);
        await waitFor(async () => (await s.store.getJob(submitted.body.id))?.status === 'succeeded');
        const [delivered] = (await s.store.listImages(submitted.body.id));

        const text = withoutInstance(await (await fetch(`${s.url}/metrics`)).text());

        expect(text).toMatch(/^image_jobs_attempts_total\{outcome="succeeded"\} 1$/m);
        expect(text).toMatch(/^image_jobs_job_duration_seconds_count\{status="succeeded"\} 1$/m);
        expect(text).toMatch(/^image_jobs_images_processed_total 1$/m);
        expect(text).toContain(`\nimage_jobs_image_input_bytes_total ${png.length}\n`);
        expect(text).toContain(`\nimage_jobs_image_output_bytes_total ${delivered!.outputBytes}\n`);
      });
    });

    describe('dashboard', () => {
      it('serves the page at / with a policy that allows nothing from elsewhere', async () => {
        const s = await start();
        const response = await fetch(`${s.url}/`);
        const html = await response.text();
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^text\/html/);
        expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(html).toContain('id="memory-chart"');
        expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="https?:/);
      });

      it('feeds it counts by status and the newest jobs from the database, and the sample ring', async () => {
        const s = await start();
        await arrange(s, 'queued', 1);
        await arrange(s, 'succeeded', 1);
        const failed = await arrange(s, 'failed', 1, Date.now(), { code: 'image_corrupt', message: 'bad header' });

        const stats = await json(`${s.url}/stats`);
        expect(stats.body.instanceId).toBe(s.service.jobs.scheduler.owner);
        expect(stats.body.counts).toEqual({ queued: 1, running: 0, succeeded: 1, failed: 1, cancelled: 0 });
        expect(stats.body.queueDepth).toBe(1);
        expect(stats.body.recentJobs.map((job: { id: number }) => job.id)).toEqual([failed.id, failed.id - 1, failed.id - 2]);
        expect(stats.body.recentJobs[0].lastError).toEqual({ code: 'image_corrupt', message: 'bad header' });

        const ring = await json(`${s.url}/stats/samples`);
        expect(ring.body).toMatchObject({ intervalMs: 10_000, capacity: 360 });
        expect(ring.body.samples).toHaveLength(1); // taken when the service started
        expect(ring.body.samples[0]).toMatchObject({ rssBytes: expect.any(Number), heapUsedBytes: expect.any(Number), externalBytes: expect.any(Number) });
      });
    });
  });
});

// Who may ask is the HTTP layer's business, the same whatever the backend: these run on the default one.
describe('access', () => {
  const token = 'a-token-of-sixteen-chars';

  it('with API_TOKEN set, the debug routes, /metrics and the dashboard need it', async () => {
    const s = await startService({ ...QUIET_SWEEPER, API_TOKEN: token });
    for (const route of ['/debug/memory-stats', '/metrics', '/', '/stats', '/stats/samples']) {
      expect((await fetch(`${s.url}${route}`)).status, route).toBe(401);
      expect((await fetch(`${s.url}${route}`, { headers: { authorization: `Bearer ${token}` } })).status, route).toBe(200);
    }
  });

  const external = Object.values(os.networkInterfaces()).flat().find((address) => address?.family === 'IPv4' && !address.internal);
  it.runIf(external !== undefined)('without API_TOKEN, the debug routes answer loopback clients only', async () => {
    const s = await startService({ ...QUIET_SWEEPER, HOST: '0.0.0.0' });
    const viaNetwork = s.url.replace('127.0.0.1', external!.address);
    expect((await fetch(`${viaNetwork}/debug/memory-stats`)).status).toBe(403);
    expect((await fetch(`${viaNetwork}/debug/memory/cleanup-images`, { method: 'POST' })).status).toBe(403);
    expect((await fetch(`${s.url}/debug/memory-stats`)).status).toBe(200);
  });
});
