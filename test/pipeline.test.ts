/**
 * The image pipeline as the scheduler runs it: real SQLite with real
 * migrations, real temp store, real sharp, real scheduler, and a real HTTP
 * server on loopback as upload target.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import type { Job, NewImage } from '../src/jobs/types.js';
import { decodingPipelinesStarted } from '../src/image/convert.js';
import { readHeader } from '../src/image/header.js';
import type { ConversionOptions, Destination } from '../src/jobs/options.js';
import { createImagePipeline } from '../src/pipeline/imagePipeline.js';
import { createScheduler } from '../src/queue/scheduler.js';
import { Semaphore } from '../src/queue/semaphore.js';
import { createTempStore } from '../src/storage/tempStore.js';
import { insertJob, testDb } from './support/db.js';
import { corruptHeaderJpeg, exifRotatedJpeg, filesOf, gradient, gradientJpeg, noiseJpeg, stageInputs, truncated } from './support/images.js';
import { waitFor } from './support/wait.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

interface Target {
  readonly origin: string;
  /** Paths (with query) of the requests received, in order. */
  readonly received: string[];
}

/** An upload target on 127.0.0.1; `answer` sees each request after its body, with the count so far (1 for the first). */
async function target(answer: (res: http.ServerResponse, count: number, path: string) => void): Promise<Target> {
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.url ?? '');
      answer(res, received.length, req.url ?? '');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

const answerWith = (status: number) => (res: http.ServerResponse) => res.writeHead(status).end();

interface Submission {
  readonly options?: ConversionOptions;
  readonly destination?: Destination;
  readonly maxAttempts?: number;
  /** Images whose input file is gone before the job is queued. */
  readonly missing?: readonly number[];
}

/**
 * The header a submission stores with an image; for bytes a submission would
 * refuse (the tests of damaged images queue them anyway), a 1x1 JPEG's.
 */
async function storedHeader(bytes: Buffer): Promise<Pick<NewImage, 'inputFormat' | 'width' | 'height' | 'pages'>> {
  const header = await readHeader(bytes).catch(() => null);
  return header === null
    ? { inputFormat: 'jpeg', width: 1, height: 1, pages: 1 }
    : { inputFormat: header.format, width: header.width, height: header.height, pages: header.pages };
}

/** The pipeline under a real scheduler, with a fresh DATA_DIR; `env` overrides configuration. */
function harness(env: Record<string, string> = {}) {
  const { dir, store } = testDb();
  const config = loadConfig({
    DATA_DIR: dir, LOG_LEVEL: 'silent', RETRY_BASE_MS: '20', RETRY_MAX_MS: '40', UPLOAD_ALLOWED_HOSTS: '127.0.0.1', ...env,
  });
  const tempStore = createTempStore(config.tmpDir);
  const conversions = new Semaphore(config.convertConcurrency);
  const log = pino({ level: 'silent' });
  const handler = createImagePipeline({ config, tempStore, log, conversions });
  const scheduler = createScheduler({ ...config, store, handler, log });
  void scheduler.start();
  // Registered after testDb's hook, so it runs first: the scheduler stops before the database closes.
  afterEach(async () => {
    await scheduler.stop(0);
    await tempStore.close();
  });

  return {
    config,
    store,
    scheduler,
    conversions,
    /** Stages the images in the temp store and queues a job for them, the way a submission does. */
    async submit(images: readonly Buffer[], submission: Submission = {}): Promise<Job> {
      const key = await stageInputs(tempStore, images);
      for (const index of submission.missing ?? []) fs.rmSync(tempStore.inputPath(key, index));
      const { job } = (await insertJob(store, 
        {
          priority: 0,
          maxAttempts: submission.maxAttempts ?? 3,
          options: { format: 'webp', ...submission.options },
          destination: submission.destination ?? { type: 'local' },
          idempotencyKey: null,
          requestFingerprint: null,
          inputKey: key,
          runAt: Date.now(),
          images: await Promise.all(images.map(async (bytes) => ({ originalName: null, ...(await storedHeader(bytes)), inputBytes: bytes.length }))),
        },
        Date.now(),
      ));
      return job;
    },
    /** The job's files left in the temp store: `0`, `0.out.webp`, … */
    filesOf: (job: Job): Promise<string[]> => filesOf(tempStore, job.inputKey ?? ''),
    /** The job once it has ended and its attempt has settled (its files released). */
    ended: (job: Job): Promise<Job> =>
      waitFor(async () => {
        const current = (await store.getJob(job.id));
        return current && ['succeeded', 'failed', 'cancelled'].includes(current.status) && scheduler.running === 0 ? current : null;
      }, 20_000),
  };
}

describe('image pipeline', () => {
  it('converts every image to WebP in the local store, records it, decodes each once and deletes the temp files', async () => {
    const h = harness();
    const before = decodingPipelinesStarted();
    const images = [await gradientJpeg(64, 48), await exifRotatedJpeg(40, 20, 6), await gradient(20_000, 10).png().toBuffer()];
    const job = await h.submit(images);
    const done = await h.ended(job);
    expect(done.status).toBe('succeeded');
    expect(decodingPipelinesStarted() - before).toBe(3);
    const recorded = (await h.store.listImages(job.id)).map((image) => ({
      status: image.status, format: image.outputFormat, width: image.outputWidth, height: image.outputHeight,
      scaledToFit: image.scaledToFit, location: image.location,
    }));
    expect(recorded).toEqual([
      { status: 'delivered', format: 'webp', width: 64, height: 48, scaledToFit: false, location: `${job.id}/0.webp` },
      { status: 'delivered', format: 'webp', width: 20, height: 40, scaledToFit: false, location: `${job.id}/1.webp` },
      { status: 'delivered', format: 'webp', width: 16_383, height: 8, scaledToFit: true, location: `${job.id}/2.webp` },
    ]);
    for (const image of (await h.store.listImages(job.id))) {
      const file = path.join(h.config.outputDir, image.location ?? '');
      expect(await sharp(file).metadata()).toMatchObject({ format: 'webp', width: image.outputWidth });
      expect(fs.statSync(file).size).toBe(image.outputBytes);
    }
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('finishes each batch, inputs and outputs released, before converting the next', async () => {
    const h = harness({ IMAGE_BATCH_SIZE: '2' });
    const seen: Record<string, string[]> = {};
    let job: Job | null = null;
    const server = await target((res, _count, url) => {
      void h.filesOf(job as Job).then((files) => {
        seen[url] = files;
        res.writeHead(200).end();
      });
    });
    const images = await Promise.all([0, 1, 2].map(() => gradientJpeg(32, 32)));
    job = await h.submit(images, { destination: { type: 'http', url: `${server.origin}/{index}` } });
    expect((await h.ended(job)).status).toBe('succeeded');
    // While batch 1 uploads, image 2 is untouched; when image 2 uploads, batch 1 left nothing behind.
    expect(seen['/0']).not.toContain('2.out.webp');
    expect(seen['/1']).not.toContain('2.out.webp');
    expect(seen['/2']).toEqual(['2', '2.out.webp']);
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('retries a 500 from the destination, keeping the input until the job ends', async () => {
    const h = harness({ RETRY_BASE_MS: '400', RETRY_MAX_MS: '800' });
    const server = await target((res, count) => res.writeHead(count === 1 ? 500 : 200).end());
    const job = await h.submit([await gradientJpeg(32, 32)], { destination: { type: 'http', url: `${server.origin}/out` } });
    const retrying = await waitFor(async () => {
      const current = (await h.store.getJob(job.id));
      return current?.status === 'queued' && current.attempts === 1 ? current : null;
    });
    expect(retrying.lastError?.code).toBe('destination_failed');
    expect(await h.filesOf(job)).toEqual(['0']);
    const done = await h.ended(job);
    expect({ status: done.status, attempts: done.attempts }).toEqual({ status: 'succeeded', attempts: 2 });
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('does not deliver an image twice: a retry skips images already delivered', async () => {
    const h = harness({ IMAGE_BATCH_SIZE: '1' });
    const server = await target((res, _count, url) => {
      const failOnce = url === '/b' && !server.received.slice(0, -1).includes('/b');
      res.writeHead(failOnce ? 503 : 200).end();
    });
    const urls = [`${server.origin}/a`, `${server.origin}/b`];
    const job = await h.submit([await gradientJpeg(16, 16), await gradientJpeg(16, 16)], { destination: { type: 'http', urls } });
    const done = await h.ended(job);
    expect({ status: done.status, attempts: done.attempts }).toEqual({ status: 'succeeded', attempts: 2 });
    expect(server.received).toEqual(['/a', '/b', '/b']);
  });

  it('fails at once on a 403 as destination_rejected and deletes the temp files', async () => {
    const h = harness();
    const server = await target(answerWith(403));
    const job = await h.submit([await gradientJpeg(16, 16)], { destination: { type: 'http', url: `${server.origin}/x?sig=secret` } });
    const done = await h.ended(job);
    expect({ status: done.status, attempts: done.attempts, code: done.lastError?.code }).toEqual({ status: 'failed', attempts: 1, code: 'destination_rejected' });
    expect(done.lastError?.message).not.toContain('secret');
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('refuses a redirect as destination_redirect; the redirect target sees no request', async () => {
    const h = harness();
    const elsewhere = await target(answerWith(200));
    const server = await target((res) => res.writeHead(302, { location: `${elsewhere.origin}/stolen` }).end());
    const job = await h.submit([await gradientJpeg(16, 16)], { destination: { type: 'http', url: `${server.origin}/x` } });
    const done = await h.ended(job);
    expect({ status: done.status, code: done.lastError?.code }).toEqual({ status: 'failed', code: 'destination_redirect' });
    expect(elsewhere.received).toEqual([]);
  });

  it('aborts an upload to a destination that never answers when the attempt times out, then releases the job', async () => {
    const h = harness({ JOB_TIMEOUT_MS: '400' });
    const server = await target(() => undefined);
    const job = await h.submit([await gradientJpeg(16, 16)], { destination: { type: 'http', url: `${server.origin}/x` }, maxAttempts: 2 });
    const done = await h.ended(job);
    expect({ status: done.status, attempts: done.attempts, code: done.lastError?.code }).toEqual({ status: 'failed', attempts: 2, code: 'attempt_timeout' });
    expect(server.received).toHaveLength(2);
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('fails truncated and corrupt images as permanent image_corrupt and deletes the temp files', async () => {
    const h = harness();
    for (const bytes of [truncated(await noiseJpeg(200, 150)), corruptHeaderJpeg()]) {
      const job = await h.submit([await gradientJpeg(16, 16), bytes]);
      const done = await h.ended(job);
      expect({ status: done.status, attempts: done.attempts, code: done.lastError?.code }).toEqual({ status: 'failed', attempts: 1, code: 'image_corrupt' });
      expect(done.lastError?.message).toMatch(/^image 1 cannot be decoded/);
      expect(await h.filesOf(job)).toEqual([]);
    }
  });

  it('fails a job at once on one image, and settles it only once its other conversions have finished, leaving no output behind', async () => {
    // Two slots: both images go into libvips side by side; the damaged one fails long before the large one is done.
    const h = harness({ CONVERT_CONCURRENCY: '2' });
    const before = decodingPipelinesStarted();
    const job = await h.submit([await noiseJpeg(3000, 2000), corruptHeaderJpeg()]);
    const failed = await waitFor(async () => {
      const current = (await h.store.getJob(job.id));
      return current?.status === 'failed' ? { job: current, converting: h.conversions.inUse } : null;
    }, 20_000);
    // Recorded while the large image was still in libvips, as image_corrupt: not put off until it ends.
    expect({ attempts: failed.job.attempts, code: failed.job.lastError?.code, converting: failed.converting }).toEqual({ attempts: 1, code: 'image_corrupt', converting: 1 });
    const done = await h.ended(job);
    expect(decodingPipelinesStarted() - before).toBe(2);
    expect(h.conversions.inUse).toBe(0);
    expect(await h.filesOf(job)).toEqual([]);
    expect(done.status).toBe('failed');
  });

  it('fails a job whose input file is missing as permanent input_missing', async () => {
    const h = harness();
    const job = await h.submit([await gradientJpeg(16, 16)], { missing: [0] });
    const done = await h.ended(job);
    expect({ status: done.status, attempts: done.attempts, code: done.lastError?.code }).toEqual({ status: 'failed', attempts: 1, code: 'input_missing' });
  });

  it('deletes the temp files of a job cancelled while it uploads', async () => {
    const h = harness();
    const server = await target(() => undefined);
    const job = await h.submit([await gradientJpeg(16, 16)], { destination: { type: 'http', url: `${server.origin}/x` } });
    await waitFor(() => server.received.length === 1);
    await h.store.cancelJob(job.id, Date.now()); // its signal stops the attempt, whose end releases the files
    expect((await h.store.getJob(job.id))?.status).toBe('cancelled');
    await waitFor(() => h.scheduler.running === 0);
    expect(await h.filesOf(job)).toEqual([]);
  });

  it('never has more conversions in libvips than CONVERT_CONCURRENCY, across jobs', async () => {
    const h = harness({ CONVERT_CONCURRENCY: '1', MAX_CONCURRENT_JOBS: '3', IMAGE_BATCH_SIZE: '3' });
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, sharp.counters().process);
    }, 1);
    const photo = await noiseJpeg(600, 400);
    const jobs = await Promise.all([0, 1, 2].map(() => h.submit([photo, photo, photo])));
    for (const job of jobs) expect((await h.ended(job)).status).toBe('succeeded');
    clearInterval(sampler);
    expect(peak).toBe(1);
  });
});
