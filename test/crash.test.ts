/**
 * Crash safety and graceful shutdown, proven on the real thing: the built
 * service runs as a child process (scripts/start.sh, as `npm start` runs it),
 * is killed while clients submit, uploads stream and conversions run, and is
 * restarted on the same DATA_DIR.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { TEMP_GRACE_MS } from '../src/ops/sweeper.js';
import { cleanUpServiceProcesses, newDataDir, readDatabase, startServiceProcess, type ServiceProcess } from './support/childService.js';
import { call, jobEnded, submitMultipart, submitRaw } from './support/http.js';
import { delay, waitFor } from './support/wait.js';

afterEach(cleanUpServiceProcesses);

interface Size {
  readonly width: number;
  readonly height: number;
}

interface Image extends Size {
  readonly bytes: Buffer;
}

async function noiseJpeg(width: number, height: number): Promise<Image> {
  const bytes = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg({ quality: 85 })
    .toBuffer();
  return { bytes, width, height };
}

const randomInt = (min: number, max: number): number => min + Math.floor(Math.random() * (max - min + 1));

const folders = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

/** Jobs by status, read from the running service. */
async function statusCount(service: ServiceProcess, status: string): Promise<number> {
  const { body } = await call(`${service.url}/jobs?status=${status}&limit=100`);
  return (body.jobs as unknown[]).length;
}

/** Submits jobs one after another until `stop` fires; records each acknowledged job and any other answer. */
async function submitUntil(
  stop: AbortSignal,
  submit: () => Promise<{ status: number; body: Record<string, unknown> }>,
  sizes: readonly Size[],
  acked: Map<number, readonly Size[]>,
  otherStatuses: number[],
): Promise<void> {
  while (!stop.aborted) {
    try {
      const answer = await submit();
      if (answer.status === 202) acked.set(Number(answer.body.id), sizes);
      else otherStatuses.push(answer.status);
    } catch {
      // Killed mid-request: never acknowledged, so nothing is owed (a committed row is checked anyway, below).
    }
    await delay(100);
  }
}

/** A raw upload without a length that sends 4 KB every 100 ms and never ends: a kill finds it mid-body. */
function slowUpload(url: string, bytes: Buffer): () => void {
  const req = http.request(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'image/jpeg' } });
  req.on('error', () => undefined);
  let offset = 0;
  const sendChunk = (): void => {
    if (offset < bytes.length) req.write(bytes.subarray(offset, offset + 4_096));
    offset += 4_096;
  };
  sendChunk();
  const timer = setInterval(sendChunk, 100);
  return () => {
    clearInterval(timer);
    req.destroy();
  };
}

describe('crash safety', () => {
  // Each SIGKILL loses the attempts in flight, and a lost attempt counts by
  // design (a job that kills its process must not loop forever). A job may be
  // running at every one of the ROUNDS kills, so MAX_ATTEMPTS leaves room for
  // all of them plus the attempt that succeeds.
  const ROUNDS = 6;
  const env = { MAX_ATTEMPTS: '10', MAX_CONCURRENT_JOBS: '3', CONVERT_CONCURRENCY: '2', MAX_COMPLETED_JOBS: '100000' };

  it('every acknowledged job survives SIGKILLs mid-upload and mid-conversion and ends succeeded, with nothing left in temp and an intact database', async () => {
    const dataDir = newDataDir();
    const tmpDir = path.join(dataDir, 'tmp');
    const outputDir = path.join(dataDir, 'output');
    const [small, medium, slow] = await Promise.all([noiseJpeg(320, 240), noiseJpeg(1200, 900), noiseJpeg(1200, 900)]);
    const acked = new Map<number, readonly Size[]>();
    const otherStatuses: number[] = [];
    const slowUploadFiles: string[] = [];

    for (let round = 0; round < ROUNDS; round++) {
      const service = await startServiceProcess(dataDir, env);
      // Start the never-ending upload first and wait for its temp file: no
      // other submission runs yet, and a restarted service only removes files.
      const before = new Set(folders(tmpDir));
      const stopUpload = slowUpload(service.url, slow.bytes);
      const uploading = await waitFor(() => folders(tmpDir).find((name) => !before.has(name) && name.endsWith('.0')));
      slowUploadFiles.push(uploading);

      const stop = new AbortController();
      const submitters = [
        submitUntil(stop.signal, () => submitRaw(service.url, medium.bytes), [medium], acked, otherStatuses),
        submitUntil(
          stop.signal,
          () => submitMultipart(service.url, [{ bytes: small.bytes, name: 'small.jpg' }, { bytes: medium.bytes, name: 'medium.jpg' }]),
          [small, medium],
          acked,
          otherStatuses,
        ),
      ];
      if (round % 2 === 0) {
        // Mid-conversion: once an attempt runs, within the time one conversion takes.
        await waitFor(async () => (await statusCount(service, 'running')) > 0, 15_000);
        await delay(randomInt(0, 120));
      } else {
        await delay(randomInt(200, 1_500));
      }
      const exit = await service.kill('SIGKILL');
      stop.abort();
      stopUpload();
      await Promise.all(submitters);
      // It was alive until the kill: the kill, not a crash of its own, ended it.
      expect(exit.signal, service.logTail()).toBe('SIGKILL');
    }
    expect(otherStatuses).toEqual([]);
    expect(acked.size).toBeGreaterThan(0);

    const service = await startServiceProcess(dataDir, env);
    await waitFor(async () => (await statusCount(service, 'queued')) + (await statusCount(service, 'running')) === 0, 60_000, 100);
    for (const [id, sizes] of acked) {
      const job = await jobEnded(service.url, id);
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      expect((job.images as { status: string }[]).map((image) => image.status)).toEqual(sizes.map(() => 'delivered'));
      expect(folders(path.join(outputDir, String(id))).sort()).toEqual(sizes.map((_, index) => `${index}.webp`));
      for (const [index, size] of sizes.entries()) {
        const output = await sharp(path.join(outputDir, String(id), `${index}.webp`)).metadata();
        expect({ format: output.format, width: output.width, height: output.height }).toEqual({ format: 'webp', width: size.width, height: size.height });
      }
    }

    // Within the grace period a file may be an upload in progress: the sweeper keeps it.
    const early = await call(`${service.url}/debug/memory/cleanup-images`, { method: 'POST' });
    expect(early.body.sweep).toMatchObject({ temp_files_removed: 0, removal_failures: 0 });
    // What is left in temp are the uploads the kills cut short, which no job owns.
    const orphans = folders(tmpDir);
    expect(orphans).toEqual(expect.arrayContaining(slowUploadFiles));
    // Fast-forward past the grace period by ageing the files.
    const aged = (Date.now() - TEMP_GRACE_MS - 60_000) / 1_000;
    for (const name of orphans) fs.utimesSync(path.join(tmpDir, name), aged, aged);
    const swept = await call(`${service.url}/debug/memory/cleanup-images`, { method: 'POST' });
    expect(swept.body.sweep).toMatchObject({ temp_files_removed: orphans.length, removal_failures: 0 });
    expect(folders(tmpDir)).toEqual([]);

    const stopped = await service.kill('SIGTERM');
    expect(stopped, service.logTail()).toEqual({ code: 0, signal: null });

    readDatabase(dataDir, (db) => {
      expect(db.pragma('integrity_check')).toEqual([{ integrity_check: 'ok' }]);
      // Every job in the database, acknowledged or cut off before its answer, succeeded; none is stuck running.
      expect(db.prepare(`SELECT status, count(*) AS n FROM jobs GROUP BY status`).all()).toEqual([{ status: 'succeeded', n: expect.any(Number) }]);
      const ids = (db.prepare(`SELECT id FROM jobs ORDER BY id`).all() as { id: number }[]).map((row) => String(row.id));
      expect(folders(outputDir).sort()).toEqual(ids.sort());
      // The mid-conversion rounds killed running attempts, which the next start found and requeued.
      const { owners } = db.prepare(`SELECT count(DISTINCT lease_owner) AS owners FROM job_events WHERE kind = 'lost'`).get() as { owners: number };
      expect(owners).toBeGreaterThanOrEqual(ROUNDS / 2);
    });
  }, 90_000);
});

describe('graceful shutdown', () => {
  it('exits 0 on SIGTERM within the grace period, and the restarted service finishes the jobs put back without counting the interrupted attempt', async () => {
    const dataDir = newDataDir();
    const graceMs = 300;
    // Conversions far longer than the grace period, so the ones in flight are interrupted.
    const env = { SHUTDOWN_GRACE_MS: String(graceMs), MAX_CONCURRENT_JOBS: '2', CONVERT_CONCURRENCY: '2', WEBP_EFFORT: '6' };
    const image = await noiseJpeg(1600, 1200);
    let service = await startServiceProcess(dataDir, env);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await submitRaw(service.url, image.bytes);
      expect(answer.status).toBe(202);
      ids.push(Number(answer.body.id));
    }
    await waitFor(async () => (await statusCount(service, 'running')) === 2);

    const signalled = Date.now();
    const exit = await service.kill('SIGTERM');
    // At the most the grace period, then the 5 s a conversion already in libvips is given to end (LIBVIPS_DRAIN_MS in
    // src/service.ts), and 2 s for the process's teardown on a loaded machine; one that waited for its conversions to
    // finish would take many seconds more.
    expect(Date.now() - signalled).toBeLessThan(graceMs + 5_000 + 2_000);
    expect(exit, service.logTail()).toEqual({ code: 0, signal: null });

    /** Each job's status and attempts, with its attempt starts and returns from job_events. */
    const attemptsLedger = () =>
      readDatabase(dataDir, (db) =>
        db
          .prepare(
            `SELECT j.id, j.status, j.attempts,
                    (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.kind = 'started') AS started,
                    (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.kind = 'returned') AS returned
               FROM jobs j ORDER BY j.id`,
          )
          .all() as { id: number; status: string; attempts: number; started: number; returned: number }[],
      );
    const afterStop = attemptsLedger();
    expect(afterStop.map((job) => job.status)).toEqual(['queued', 'queued', 'queued']);
    expect(afterStop.filter((job) => job.returned === 1)).toHaveLength(2);
    for (const job of afterStop) expect(job.attempts).toBe(job.started - job.returned);

    service = await startServiceProcess(dataDir, env);
    for (const id of ids) expect((await jobEnded(service.url, id, 30_000)).status).toBe('succeeded');
    expect((await service.kill('SIGTERM')).code).toBe(0);

    const final = attemptsLedger();
    expect(final.map((job) => [job.status, job.attempts])).toEqual(ids.map(() => ['succeeded', 1]));
    for (const job of final) expect(job.attempts).toBe(job.started - job.returned);
    expect(final.filter((job) => job.started === 2 && job.returned === 1)).toHaveLength(2);
  }, 60_000);

  it('answers a request waiting for its job (Prefer: wait) with the job as it is, then exits 0', async () => {
    const service = await startServiceProcess(newDataDir());
    const submitted = await submitRaw(service.url, (await noiseJpeg(64, 48)).bytes, '?delayMs=3600000');
    expect(submitted.status).toBe(202);
    const waiting = call(`${service.url}/jobs/${String(submitted.body.id)}`, { headers: { prefer: 'wait=60' } });
    await waitFor(async () => /^image_jobs_waiting_requests\{instance_id="[^"]+"\} 1$/m.test(await (await fetch(`${service.url}/metrics`)).text()) || null);

    const exit = await service.kill('SIGTERM');
    expect(exit, service.logTail()).toEqual({ code: 0, signal: null });
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(answered.headers.get('preference-applied')).toBe('wait=60');
    expect(answered.body.status).toBe('queued');
  });

  it('answers a request waiting on one process when another process sharing the database ends the job', async () => {
    const dataDir = newDataDir();
    const first = await startServiceProcess(dataDir);
    const second = await startServiceProcess(dataDir);
    const submitted = await submitRaw(first.url, (await noiseJpeg(64, 48)).bytes, '?delayMs=3600000');
    expect(submitted.status).toBe(202);
    const waiting = call(`${second.url}/jobs/${String(submitted.body.id)}`, { headers: { prefer: 'wait=60' } });
    await waitFor(async () => /^image_jobs_waiting_requests\{instance_id="[^"]+"\} 1$/m.test(await (await fetch(`${second.url}/metrics`)).text()) || null);

    // The cancel is seen by the first process only: the second reads the job again on its own.
    expect((await call(`${first.url}/jobs/${String(submitted.body.id)}/cancel`, { method: 'POST' })).status).toBe(200);
    const answered = await waiting;
    expect(answered.headers.get('preference-applied')).toBe('wait=60');
    expect(answered.body.status).toBe('cancelled');
    for (const service of [first, second]) expect((await service.kill('SIGTERM')).code).toBe(0);
  });
});
