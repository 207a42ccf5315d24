import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PRUNE_BATCH } from '../src/db/limits.js';
import type { JobStatus } from '../src/jobs/states.js';
import { createSweeper, TEMP_GRACE_MS, type SweepReport } from '../src/ops/sweeper.js';
import { createTempStore } from '../src/storage/tempStore.js';
import { jobInState, newJob, testDb } from './support/db.js';
import { waitFor } from './support/wait.js';

const NOW = Date.parse('2025-05-29T10:30:00Z');
const MINUTE = 60_000;
const TTL_MS = 60 * MINUTE;
const image = { originalName: 'a.jpg', inputFormat: 'jpeg', width: 4, height: 3, pages: 1, inputBytes: 100 };

function setup(overrides: { sweepCron?: string; maxCompletedJobs?: number } = {}) {
  const { dir, db, store } = testDb();
  const tempStore = createTempStore(path.join(dir, 'tmp'));
  const outputDir = path.join(dir, 'output');
  const config = { outputDir, completedTtlMs: TTL_MS, maxCompletedJobs: 2, sweepCron: '*/5 * * * *', ...overrides };
  const reports: SweepReport[] = [];
  const failures: unknown[] = [];
  const sweeper = createSweeper({
    config,
    store,
    tempStore,
    log: pino({ level: 'silent' }),
    onSweep: (report) => reports.push(report),
    onSweepFailed: (error) => failures.push(error),
  });
  const job = async (status: JobStatus, finishedAt?: number, inputKey: string | null = null) =>
    (await jobInState(db, store, status, { finishedAt, job: { images: [image, image], inputKey } })).id;
  const outputFolder = (name: string | number) => {
    fs.mkdirSync(path.join(outputDir, String(name)), { recursive: true });
    fs.writeFileSync(path.join(outputDir, String(name), '0.webp'), 'result');
  };
  /** One key's temp files, last touched `ageMs` before NOW: image 0's input of `bytes` bytes, and its output as well when `withOutput`. */
  const tempFiles = (ageMs: number, bytes = 10, withOutput = false) => {
    const key = tempStore.newKey();
    const mtime = new Date(NOW - ageMs);
    for (const file of [tempStore.inputPath(key, 0), ...(withOutput ? [tempStore.outputPath(key, 0, 'webp')] : [])]) {
      fs.writeFileSync(file, Buffer.alloc(bytes));
      fs.utimesSync(file, mtime, mtime);
    }
    return key;
  };
  return { db, store, tempStore, outputDir, sweeper, reports, failures, job, outputFolder, tempFiles };
}

const count = (t: ReturnType<typeof setup>, sql: string, ...params: unknown[]) =>
  (t.db.prepare(sql).get(...params) as { n: number }).n;

describe('sweeper', () => {
  it('prunes terminal jobs past the TTL, then all but the newest MAX_COMPLETED_JOBS, never live ones', async () => {
    const t = setup();
    const queued = await t.job('queued');
    const running = await t.job('running');
    const expired = [await t.job('succeeded', NOW - 2 * TTL_MS), await t.job('failed', NOW - TTL_MS - 1), await t.job('cancelled', NOW - 3 * TTL_MS)];
    const newest = await t.job('succeeded', NOW - 1_000);
    const second = await t.job('failed', NOW - 2_000);
    const overflow = await t.job('cancelled', NOW - 3_000);

    const report = await t.sweeper.sweep(NOW);

    expect(report.jobsPruned).toBe(4);
    const left = (t.db.prepare('SELECT id FROM jobs ORDER BY id').all() as { id: number }[]).map((row) => row.id);
    expect(left).toEqual([queued, running, newest, second]);
    for (const id of [...expired, overflow]) {
      expect(count(t, 'SELECT count(*) AS n FROM job_images WHERE job_id = ?', id)).toBe(0);
      expect(count(t, 'SELECT count(*) AS n FROM job_events WHERE job_id = ?', id)).toBe(0);
    }
    expect(count(t, 'SELECT count(*) AS n FROM job_images')).toBe(8);
  });

  it('deletes the result folders of pruned jobs and of jobs long gone, and keeps the rest of the output store', async () => {
    const t = setup();
    const kept = await t.job('succeeded', NOW - 1_000);
    const running = await t.job('running');
    const pruned = await t.job('succeeded', NOW - 2 * TTL_MS);
    for (const id of [kept, running, pruned, 99_999]) t.outputFolder(id);
    fs.writeFileSync(path.join(t.outputDir, 'README'), 'not a job folder');

    const report = await t.sweeper.sweep(NOW);

    expect(report.outputFoldersRemoved).toBe(2);
    expect(fs.readdirSync(t.outputDir).sort()).toEqual([String(kept), String(running), 'README'].sort());
  });

  it('deletes temp files no queued or running job owns once idle past the grace period', async () => {
    const t = setup();
    const abandoned = t.tempFiles(TEMP_GRACE_MS + MINUTE, 150, true);
    const uploading = t.tempFiles(MINUTE);
    const ofQueued = t.tempFiles(2 * TEMP_GRACE_MS);
    const ofRunning = t.tempFiles(2 * TEMP_GRACE_MS);
    const ofFailed = t.tempFiles(2 * TEMP_GRACE_MS, 200);
    await t.job('queued', undefined, ofQueued);
    await t.job('running', undefined, ofRunning);
    await t.job('failed', NOW - 1_000, ofFailed);
    fs.writeFileSync(path.join(t.tempStore.root, 'README'), 'not a temp file of a job');

    const report = await t.sweeper.sweep(NOW);

    expect(report.tempFilesRemoved).toBe(3);
    expect(report.tempBytesRemoved).toBe(500);
    const left = (await t.tempStore.list()).map((files) => files.key).sort();
    expect(left).toEqual([uploading, ofQueued, ofRunning].sort());
    expect(fs.readdirSync(t.tempStore.root).filter((name) => name.startsWith(abandoned))).toEqual([]);
    expect(fs.existsSync(path.join(t.tempStore.root, 'README'))).toBe(true);
  });

  it('with many idle keys and jobs to prune, asks for owners chunk by chunk and prunes batch after batch, missing none', async () => {
    const t = setup();
    const keys = Array.from({ length: 1_200 }, () => t.tempFiles(2 * TEMP_GRACE_MS));
    const owned = keys.filter((_, i) => i % 2 === 0);
    // Owners waiting for a later runAt: scheduled rows, which own their files as queued ones do.
    (await t.store.insertJobs(owned.map((inputKey) => newJob({ inputKey, runAt: NOW + TEMP_GRACE_MS })), NOW));
    const done = (await t.store.insertJobs(Array.from({ length: 2 * PRUNE_BATCH + 3 }, () => newJob({ runAt: 0 })), 0));
    const claimed = (await t.store.claimDue('me', 1, 30_000, done.length));
    (await t.store.completeAndClaimDue(claimed.map((job) => ({ jobId: job.id, owner: 'me', attempt: 1 })), 2, 'me', 30_000, 0));

    const report = await t.sweeper.sweep(NOW);

    expect(report.jobsPruned).toBe(done.length); // all finished long before the TTL
    expect(report.tempFilesRemoved).toBe(600);
    expect((await t.tempStore.list()).map((files) => files.key).sort()).toEqual([...owned].sort());
    expect((await t.store.countByStatus())).toMatchObject({ queued: 600, succeeded: 0 });
  });

  it('checkpoints the WAL, reports what it did and keeps it as the last run; a second sweep finds nothing', async () => {
    const t = setup();
    await t.job('succeeded', NOW - 2 * TTL_MS);
    expect(t.sweeper.lastRun).toBeNull();

    const first = await t.sweeper.sweep(NOW);
    expect(first).toMatchObject({ at: NOW, jobsPruned: 1, removalFailures: 0, walCheckpoint: { busy: 0, log: 0 } });
    expect(first.durationMs).toBeGreaterThanOrEqual(0);
    expect(t.sweeper.lastRun).toBe(first);
    expect(fs.statSync(`${t.db.name}-wal`).size).toBe(0);

    const second = await t.sweeper.sweep(NOW);
    expect(second).toMatchObject({ jobsPruned: 0, outputFoldersRemoved: 0, tempFilesRemoved: 0 });
    expect(t.reports).toEqual([first, second]);
  });

  it('never overlaps itself: a sweep asked for while one runs shares its report', async () => {
    const t = setup();
    await t.job('failed', NOW - 2 * TTL_MS);
    const first = t.sweeper.sweep(NOW);
    const second = t.sweeper.sweep(NOW + 1);
    expect(second).toBe(first);
    await first;
    expect(t.reports).toHaveLength(1);
    expect((await t.sweeper.sweep(NOW + 2)).at).toBe(NOW + 2);
  });

  it('reports a failed sweep and runs again afterwards', async () => {
    const t = setup();
    t.db.close();
    await expect(t.sweeper.sweep(NOW)).rejects.toThrow();
    expect(t.failures).toHaveLength(1);
    expect(t.sweeper.lastRun).toBeNull();
    await expect(t.sweeper.sweep(NOW)).rejects.toThrow();
    expect(t.failures).toHaveLength(2);
  });

  it('runs on its cron schedule until stopped', async () => {
    const t = setup({ sweepCron: '* * * * * *' });
    t.sweeper.start();
    await waitFor(() => t.reports.length > 0, 3_000);
    await t.sweeper.stop();
    const runs = t.reports.length;
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(t.reports.length).toBe(runs);
  });
});
