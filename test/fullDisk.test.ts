import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { openDatabase } from '../src/db/sqlite/open.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import { TEMP_GRACE_MS } from '../src/ops/sweeper.js';
import { TransientError } from '../src/queue/errors.js';
import { createScheduler } from '../src/queue/scheduler.js';
import { DiskFullError, diskFullOr } from '../src/storage/diskFull.js';
import { createDiskSpace, DiskLowError } from '../src/storage/diskSpace.js';
import { insertJob, newJob } from './support/db.js';
import { call, expectProblem, jobEnded, submitRaw, type Answer } from './support/http.js';
import { gradientJpeg, noiseJpeg } from './support/images.js';
import { startService, type RunningService } from './support/service.js';
import { mountSmallDisk, type SmallDisk } from './support/smallDisk.js';
import { delay, waitFor } from './support/wait.js';

/**
 * A real service whose DATA_DIR is a small tmpfs, filled to each edge with
 * a filler file: every answer on a full or nearly full disk is truthful, and
 * the service carries on by itself once space returns.
 */

const DISK_BYTES = 40 * 1024 * 1024;
const MiB = 1024 * 1024;
const HOUR_MS = 3_600_000;

const mounted = mountSmallDisk(DISK_BYTES);
const disk: SmallDisk | null = typeof mounted === 'string' ? null : mounted;
if (typeof mounted === 'string') console.error(`fullDisk.test.ts skipped: cannot mount a tmpfs (it needs root): ${mounted}`);

afterEach(() => disk?.empty());
afterAll(() => disk?.unmount());

/** A service on its own folder of the small disk; the folder goes when the test ends, after the service has stopped. */
async function serviceOnSmallDisk(small: SmallDisk, env: Record<string, string> = {}): Promise<RunningService> {
  const dataDir = small.newFolder();
  onTestFinished(() => fs.rmSync(dataDir, { recursive: true, force: true })); // runs after the service's own stop (hooks run last-in, first-out)
  return startService({ MIN_FREE_DISK_BYTES: '0', ...env, DATA_DIR: dataDir });
}

/** A JPEG of `bytes` bytes: a real header, then padding the header read never looks at. */
async function jpegOfSize(bytes: number): Promise<Buffer> {
  const image = await gradientJpeg(64, 64);
  return Buffer.concat([image, Buffer.alloc(bytes - image.length, 0x5a)]);
}

function expectUnavailable(answer: Answer, code: string): void {
  expectProblem(answer, 503, code);
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
}

interface RawAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/**
 * Sends a request through `agent` whose body is written by `send` as the
 * service reads it; resolves with the answer as soon as it comes, even if
 * `send` has more to write (the service may answer before the body ends).
 */
function streamRequest(
  agent: http.Agent, url: string, pathName: string, headers: http.OutgoingHttpHeaders, send: (req: http.ClientRequest) => Promise<void>,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(pathName, url), { method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    let answered = false;
    req.on('response', () => {
      answered = true;
    });
    // Writing after the service has answered and closed may fail: the answer is what counts.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    send(req).then(
      () => req.end(),
      () => undefined,
    );
  });
}

/** `GET /health` through `agent`, failing if no answer comes within `timeoutMs`. */
function healthThrough(agent: http.Agent, url: string, timeoutMs = 3_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL('/health', url), { agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Writes `chunk` and waits until the socket takes more. */
async function write(req: http.ClientRequest, chunk: Buffer): Promise<void> {
  if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
}

/** Waits until the service holds a temp file: the submission has passed its checks and is writing its body. */
async function uploadUnderWay(service: RunningService): Promise<void> {
  await waitFor(() => service.tempFiles().length > 0, 5_000);
}

describe.skipIf(disk === null)('on a full disk', () => {
  const small = disk as SmallDisk;

  it('a retry or cancel that cannot be written answers 503 disk_full, the database unchanged; both work once space returns', async () => {
    const service = await serviceOnSmallDisk(small);
    const { url } = service;
    const image = await gradientJpeg(32, 32);
    const first = await submitRaw(url, image, `?delayMs=${HOUR_MS}`);
    const second = await submitRaw(url, image, `?delayMs=${HOUR_MS}`);
    expect([first.status, second.status]).toEqual([202, 202]);
    const [firstId, secondId] = [Number(first.body.id), Number(second.body.id)];
    const runAt = (await service.store.getJob(firstId))?.runAt;

    small.leaveFree(0);
    expectUnavailable(await call(`${url}/jobs/${firstId}/retry`, { method: 'POST' }), 'disk_full');
    expectUnavailable(await call(`${url}/jobs/${secondId}/cancel`, { method: 'POST' }), 'disk_full');
    expect((await service.store.getJob(firstId))).toMatchObject({ status: 'queued', runAt });
    expect((await service.store.getJob(secondId))).toMatchObject({ status: 'queued' });

    small.empty();
    const cancelled = await call(`${url}/jobs/${secondId}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect((await service.store.getJob(secondId))?.status).toBe('cancelled');
    const retried = await call(`${url}/jobs/${firstId}/retry`, { method: 'POST' });
    expect(retried.status).toBe(200);
    const stored = (await service.store.getJob(firstId));
    expect(stored?.runAt).toBeLessThan(Date.now() + 1);
    expect(new Date(String(retried.body.runAt)).getTime()).toBe(stored?.runAt);
    expect((await jobEnded(url, firstId)).status).toBe('succeeded');
  });

  it('a submission whose row finds no room answers 503 disk_full and leaves no row and no file', async () => {
    const service = await serviceOnSmallDisk(small);
    const { url } = service;
    const image = await jpegOfSize(2 * MiB);
    small.leaveFree(image.length + 8 * 1024); // the image fits; its row and the WAL do not
    const answer = await submitRaw(url, image);
    expectUnavailable(answer, 'disk_full');
    expect((await service.store.countByStatus()).queued).toBe(0);
    expect(service.tempFiles()).toEqual([]);

    small.empty();
    expect((await submitRaw(url, image, `?delayMs=${HOUR_MS}`)).status).toBe(202);
  });

  const boundary = 'full-disk-boundary';
  /** How each form of submission frames one image's bytes. */
  const forms = [
    { form: 'raw', contentType: 'image/jpeg', before: Buffer.alloc(0), after: Buffer.alloc(0) },
    {
      form: 'multipart',
      contentType: `multipart/form-data; boundary=${boundary}`,
      before: Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
      after: Buffer.from(`\r\n--${boundary}--\r\n`),
    },
  ];

  it.each(forms)('a $form body that meets a full disk mid-stream answers 503 disk_full, closes the connection, leaves nothing, and the next request is answered', async ({ contentType, before, after }) => {
    const service = await serviceOnSmallDisk(small, { MAX_UPLOAD_BYTES: String(8 * MiB) });
    const { url } = service;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    const image = await jpegOfSize(6 * MiB);
    const answer = await streamRequest(agent, url, '/jobs', { 'content-type': contentType, 'transfer-encoding': 'chunked' }, async (req) => {
      await write(req, Buffer.concat([before, image.subarray(0, MiB)]));
      await uploadUnderWay(service);
      small.leaveFree(0); // another writer takes the rest of the disk while the body streams
      for (let at = MiB; at < image.length; at += MiB) await write(req, image.subarray(at, at + MiB));
      await write(req, after);
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body.code).toBe('disk_full');
    expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
    expect(answer.headers.connection).toBe('close');
    expect(await healthThrough(agent, url)).toBe(200);
    await waitFor(() => service.tempFiles().length === 0, 5_000);
    expect((await service.store.countByStatus()).queued).toBe(0);
  });

  it('a body refused as too large while it streams closes the connection, and the next request is answered', async () => {
    const { url } = await serviceOnSmallDisk(small, { MAX_UPLOAD_BYTES: String(MiB) });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    const image = await jpegOfSize(3 * MiB);
    const answer = await streamRequest(agent, url, '/jobs', { 'content-type': 'image/jpeg', 'transfer-encoding': 'chunked' }, async (req) => {
      for (let at = 0; at < image.length; at += 256 * 1024) await write(req, image.subarray(at, at + 256 * 1024));
    });
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(await healthThrough(agent, url)).toBe(200);
  });

  it('uploads in flight reserve their size: concurrent large uploads get 503 disk_low before the disk fills', async () => {
    const minFree = 4 * MiB;
    const service = await serviceOnSmallDisk(small, { MIN_FREE_DISK_BYTES: String(minFree), MAX_UPLOAD_BYTES: String(8 * MiB) });
    const { url } = service;
    const image = await jpegOfSize(6 * MiB);
    const before = small.freeBytes();
    let lowest = before;
    const sampler = setInterval(() => {
      lowest = Math.min(lowest, small.freeBytes());
    }, 5);
    onTestFinished(() => clearInterval(sampler));
    // Eight slow uploads at once: each is in flight while the others check the disk.
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => {
        const agent = new http.Agent({ keepAlive: false });
        return streamRequest(agent, url, `/jobs?delayMs=${HOUR_MS}`, { 'content-type': 'image/jpeg', 'content-length': image.length }, async (req) => {
          for (let at = 0; at < image.length; at += MiB) {
            await write(req, image.subarray(at, at + MiB));
            await delay(40);
          }
        });
      }),
    );
    clearInterval(sampler);
    const statuses = answers.map((answer) => answer.status);
    const accepted = statuses.filter((status) => status === 202).length;
    expect(statuses.every((status) => status === 202 || status === 503), JSON.stringify(statuses)).toBe(true);
    expect(answers.filter((answer) => answer.status === 503).every((answer) => answer.body.code === 'disk_low' && Number(answer.headers['retry-after']) > 0)).toBe(true);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(8);
    // Every accepted upload fitted above the floor; the refused ones never began.
    expect(accepted * image.length).toBeLessThanOrEqual(before - minFree);
    expect(lowest).toBeGreaterThan(minFree - MiB);
    expect((await service.store.countByStatus()).queued).toBe(accepted);
    expect(service.tempFiles()).toHaveLength(accepted);
  });

  it('back-to-back submissions stop with 503 disk_low before free space falls below MIN_FREE_DISK_BYTES', async () => {
    const minFree = 8 * MiB;
    const service = await serviceOnSmallDisk(small, { MIN_FREE_DISK_BYTES: String(minFree) });
    const { url } = service;
    const image = await jpegOfSize(3 * MiB);
    let accepted = 0;
    for (;;) {
      const answer = await submitRaw(url, image, `?delayMs=${HOUR_MS}`);
      if (answer.status !== 202) {
        expectUnavailable(answer, 'disk_low');
        break;
      }
      accepted += 1;
      // Rows and the WAL take a little beside the images.
      expect(small.freeBytes()).toBeGreaterThan(minFree - 256 * 1024);
    }
    expect(accepted).toBeGreaterThan(0);
    expect(small.freeBytes()).toBeLessThan(minFree + image.length + 256 * 1024);
    expect((await service.store.countByStatus()).queued).toBe(accepted);
  });

  it('/ready says not ready while the disk is low, and ready again once space returns', async () => {
    const minFree = 4 * MiB;
    const { url } = await serviceOnSmallDisk(small, { MIN_FREE_DISK_BYTES: String(minFree) });
    expect((await call(`${url}/ready`)).status).toBe(200);
    small.leaveFree(2 * MiB);
    const low = await call(`${url}/ready`);
    expect(low.status).toBe(503);
    expect(low.body).toMatchObject({ status: 'not_ready', checks: { disk: false, database: true } });
    expectUnavailable(await submitRaw(url, await gradientJpeg(16, 16)), 'disk_low');
    small.empty();
    expect((await call(`${url}/ready`)).status).toBe(200);
  });

  it('an attempt whose output meets a full disk retries past its last attempt and succeeds once space returns', async () => {
    const service = await serviceOnSmallDisk(small, { MAX_ATTEMPTS: '1' });
    const { url } = service;
    const image = await noiseJpeg(1500, 1500); // its WebP is about 1 MB
    const submitted = await submitRaw(url, image, '?delayMs=1000');
    expect(submitted.status).toBe(202);
    const id = Number(submitted.body.id);
    small.leaveFree(256 * 1024); // room for the database's writes, not for the output
    const waiting = await waitFor(async () => {
      const job = (await service.store.getJob(id));
      return job?.status === 'queued' && job.lastError?.code === 'disk_full' ? job : null;
    }, 15_000, 20);
    expect(waiting.attempts).toBeGreaterThanOrEqual(1);
    expect(service.tempFiles().filter((name) => name.includes('.out.'))).toEqual([]); // a failed output is not left behind

    small.empty();
    const ended = await jobEnded(url, id, 20_000);
    expect(ended.status).toBe('succeeded');
    expect((await call(`${url}/jobs/${id}/images/0`)).status).toBe(200);
    expect(service.tempFiles()).toEqual([]);
  });

  it('heartbeats, claims and an attempt\'s outcome that meet a full disk wait for space: no job is stuck and the loop lives', async () => {
    const db = openDatabase(path.join(small.newFolder(), 'jobs.db'), { synchronous: 'NORMAL' });
    const store = createSqliteStore(db);
    onTestFinished(() => store.close());
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const attemptsSeen: number[] = [];
    const lines: { msg: string }[] = [];
    const scheduler = createScheduler({
      store,
      log: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) }),
      maxConcurrentJobs: 2,
      jobTimeoutMs: 30_000,
      retryBaseMs: 10,
      retryMaxMs: 20,
      leaseMs: 300,
      heartbeatMs: 50,
      handler: {
        async perform({ job, ref }) {
          attemptsSeen.push(job.id);
          // The first job's first attempt runs while the disk fills, then fails.
          if (job.id === 1 && ref.attempt === 1) {
            await held;
            throw new TransientError('destination_5xx', 'the destination answered 503');
          }
        },
        release: async () => undefined,
      },
    });
    onTestFinished(() => scheduler.stop(0).then(() => undefined));
    const now = Date.now();
    const first = (await insertJob(store, newJob({ runAt: now }), now)).job;
    const second = (await insertJob(store, newJob({ runAt: now + 300 }), now)).job;
    await scheduler.start();
    await waitFor(async () => (await store.getJob(first.id))?.status === 'running');

    small.leaveFree(0);
    await delay(700); // heartbeats fail past the lease, the claim of the second job fails
    release(); // the attempt fails; its outcome cannot be written
    await delay(1_300); // the loop tries the claim again, and fails again

    expect((await store.getJob(first.id))?.status).toBe('running');
    expect((await store.getJob(second.id))?.status).toBe('queued');

    small.empty();
    await waitFor(async () => (await store.getJob(first.id))?.status === 'succeeded' && (await store.getJob(second.id))?.status === 'succeeded', 10_000, 20);
    expect((await store.getJob(first.id))).toMatchObject({ attempts: 2, lastError: null });
    // The loop's failing claims are told once, and their end once: not a line a second.
    const told = (start: string): number => lines.filter((line) => line.msg.startsWith(start)).length;
    expect([told('scheduler loop error'), told('scheduler loop recovered')]).toEqual([1, 1]);
    // The first attempt's failure was written as it happened, not lost to lease expiry.
    expect((await store.listEvents(first.id)).map((event) => event.kind)).toEqual(['started', 'retrying', 'started', 'succeeded']);
  });

  it('reservations count against the free space until written or released, and the operator is told once per episode', async () => {
    const folder = small.newFolder();
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const minFree = 4 * MiB;
    const space = createDiskSpace(folder, minFree, log);
    const free = small.freeBytes();
    const held = [];
    for (;;) {
      try {
        held.push(await space.reserve(2 * MiB));
      } catch (error) {
        expect(error).toBeInstanceOf(DiskLowError);
        break;
      }
    }
    expect(held.length).toBe(Math.floor((free - minFree) / (2 * MiB)));
    await expect(space.reserve(2 * MiB)).rejects.toBeInstanceOf(DiskLowError); // refused twice, told once
    expect((await space.measure()).reservedBytes).toBe(held.length * 2 * MiB);

    // Bytes written move from the reservation to the volume's own figure, without counting twice.
    const [first] = held;
    fs.writeFileSync(path.join(folder, 'landed'), Buffer.alloc(MiB));
    first?.landed(MiB);
    expect((await space.measure()).reservedBytes).toBe(held.length * 2 * MiB - MiB);
    for (const reservation of held) reservation.release();
    first?.release(); // idempotent
    expect(await space.measure()).toMatchObject({ reservedBytes: 0, low: false });

    space.noticeFull({ where: 'a test' });
    space.noticeFull({ where: 'a test' });
    await space.measure();
    const told = lines.map((line) => line.msg.split(':')[0]);
    expect(told).toEqual(['disk low', 'disk space is back', 'disk full', 'disk space is back']);
  });

  it('a sweep on a full disk skips its database steps and still removes orphaned temp files', async () => {
    const service = await serviceOnSmallDisk(small, { COMPLETED_TTL_MS: '0' });
    const { url, config } = service;
    const submitted = await submitRaw(url, await gradientJpeg(32, 32));
    expect((await jobEnded(url, submitted.body.id)).status).toBe('succeeded');
    const orphan = path.join(config.tmpDir, '00000000-0000-4000-8000-000000000000.0');
    fs.writeFileSync(orphan, Buffer.alloc(MiB));
    const later = Date.now() + TEMP_GRACE_MS + 60_000;

    small.leaveFree(0);
    const onFullDisk = await service.service.ops.sweeper.sweep(later);
    expect(onFullDisk).toMatchObject({ jobsPruned: 0, tempFilesRemoved: 1 });
    expect(fs.existsSync(orphan)).toBe(false);

    small.empty();
    expect((await service.service.ops.sweeper.sweep(later)).jobsPruned).toBe(1);
  });

  it('an SQLite I/O error counts as a full disk only while the database\'s volume is nearly full', async () => {
    const folder = small.newFolder();
    // As better-sqlite3 reports an ENOSPC met while growing the WAL index (-shm).
    const ioError = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_SHMSIZE' });
    expect(diskFullOr(ioError, folder)).toBe(ioError);
    small.leaveFree(0);
    expect(diskFullOr(ioError, folder)).toBeInstanceOf(DiskFullError);
    expect(diskFullOr(ioError)).toBe(ioError); // no folder named: no guess
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    expect(diskFullOr(full)).toBeInstanceOf(DiskFullError);
  });
});
