import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { openFilesUnder } from './support/descriptors.js';
import { pixelBombPng } from './support/images.js';
import type { RunningService } from './support/service.js';
import { serviceBackends } from './support/serviceBackends.js';
import { tiffWithDirectoryLast } from './support/tiff.js';
import { delay, waitFor } from './support/wait.js';

const jpeg = (width = 64, height = 48): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r: 200, g: 80, b: 20 } } }).jpeg().toBuffer();

const png = (width = 32, height = 32): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 4, background: { r: 0, g: 90, b: 200, alpha: 0.5 } } }).png().toBuffer();

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, headers: response.headers, body };
}

const raw = (s: RunningService, bytes: Buffer, query = '', headers: Record<string, string> = {}) =>
  call(`${s.url}/jobs${query}`, { method: 'POST', body: bytes, headers: { 'content-type': 'image/jpeg', ...headers } });

function multipart(s: RunningService, files: { bytes: Buffer; name: string }[], options?: unknown, headers: Record<string, string> = {}) {
  const form = new FormData();
  for (const file of files) form.append('images', new Blob([file.bytes]), file.name);
  if (options !== undefined) form.append('options', typeof options === 'string' ? options : JSON.stringify(options));
  return call(`${s.url}/jobs`, { method: 'POST', body: form, headers });
}

function expectProblem(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, code, title: expect.any(String), detail: expect.any(String), type: expect.any(String) });
}

/** The refused submission left nothing: no job row, no temp file. */
async function expectNothingLeft(s: RunningService): Promise<void> {
  expect(await s.store.listJobs({ limit: 10 })).toEqual([]);
  expect(s.tempFiles()).toEqual([]);
}

async function jobWhen(s: RunningService, id: unknown, status: string): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const answer = await call(`${s.url}/jobs/${String(id)}`);
    return answer.body.status === status ? answer.body : null;
  });
}

/** The value of the `image_jobs_waiting_requests` gauge in a /metrics scrape. */
async function waitingRequests(s: RunningService): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return Number(/^image_jobs_waiting_requests\{instance_id="[^"]+"\} (\d+)$/m.exec(text)?.[1]);
}

describe.each(serviceBackends)('the API on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    describe('POST /jobs with a raw image body', () => {
      it('answers 202 with Location and the job, converts to WebP q80, and serves the result', async () => {
        const s = await backend.start();
        const answer = await raw(s, await jpeg(64, 48));
        expect(answer.status).toBe(202);
        expect(answer.headers.get('location')).toBe(`/jobs/${String(answer.body.id)}`);
        expect(answer.body).toMatchObject({
          status: 'queued',
          attempts: 0,
          maxAttempts: 3,
          options: { format: 'webp' },
          destination: { type: 'local' },
          images: [{ index: 0, inputFormat: 'jpeg', width: 64, height: 48, status: 'pending' }],
        });
        const done = await jobWhen(s, answer.body.id, 'succeeded');
        const [image] = done.images as Record<string, unknown>[];
        expect(image).toMatchObject({ status: 'delivered', outputFormat: 'webp', location: `/jobs/${String(answer.body.id)}/images/0` });
        const download = await fetch(`${s.url}${String(image?.location)}`);
        expect(download.headers.get('content-type')).toBe('image/webp');
        const meta = await sharp(Buffer.from(await download.arrayBuffer())).metadata();
        expect(meta).toMatchObject({ format: 'webp', width: 64, height: 48 });
        expect(s.tempFiles()).toEqual([]);
      });

      it('takes options from the query string', async () => {
        const s = await backend.start();
        const answer = await raw(s, await jpeg(200, 100), '?format=png&width=50&priority=3&maxAttempts=5');
        expect(answer.status).toBe(202);
        expect(answer.body).toMatchObject({ priority: 3, maxAttempts: 5, options: { format: 'png', width: 50 } });
        const done = await jobWhen(s, answer.body.id, 'succeeded');
        expect((done.images as Record<string, unknown>[])[0]).toMatchObject({ outputFormat: 'png', outputWidth: 50, outputHeight: 25 });
      });

      it('reads integer options from their digits in the query string, the one rule JSON options follow too', async () => {
        const s = await backend.start();
        expect((await raw(s, await jpeg(), '?quality=70&delayMs=60000')).body).toMatchObject({ options: { quality: 70 } });
        for (const quality of ['50.5', '7e1', ' 70', '0x46', '']) {
          expectProblem(await raw(s, await jpeg(), `?quality=${encodeURIComponent(quality)}`), 400, 'invalid_options');
        }
        expect((await s.store.listJobs({ limit: 10 }))).toHaveLength(1);
      });

      it('sniffs the format from the bytes, not the declared content type', async () => {
        const s = await backend.start();
        const answer = await raw(s, await png(), '', { 'content-type': 'application/octet-stream' });
        expect(answer.status).toBe(202);
        expect((answer.body.images as Record<string, unknown>[])[0]?.inputFormat).toBe('png');
      });
    });

    describe('POST /jobs with multipart/form-data', () => {
      it('stores every image in upload order with its filename as metadata, and the options', async () => {
        const s = await backend.start();
        const files = [
          { bytes: await jpeg(10, 10), name: 'a.jpg' },
          { bytes: await png(20, 20), name: 'b.png' },
          { bytes: await jpeg(30, 30), name: 'c.jpg' },
        ];
        const answer = await multipart(s, files, { quality: 70, format: 'webp' });
        expect(answer.status).toBe(202);
        expect((answer.body.images as Record<string, unknown>[]).map((image) => [image.index, image.originalName, image.width])).toEqual([
          [0, 'a.jpg', 10],
          [1, 'b.png', 20],
          [2, 'c.jpg', 30],
        ]);
        expect(answer.body.options).toMatchObject({ quality: 70 });
        await jobWhen(s, answer.body.id, 'succeeded');
      });

      it('converts TIFFs whose directory comes after the pixels, little- and big-endian', async () => {
        const s = await backend.start();
        const [width, height] = [200, 120];
        const pixels = await sharp({ create: { width, height, channels: 3, background: { r: 10, g: 120, b: 240 } } }).raw().toBuffer();
        const files = (['II', 'MM'] as const).map((order) => ({ bytes: tiffWithDirectoryLast(width, height, pixels, order), name: `${order}.tiff` }));
        const answer = await multipart(s, files);
        expect(answer.status, JSON.stringify(answer.body)).toBe(202);
        const job = await jobWhen(s, answer.body.id, 'succeeded');
        expect((job.images as Record<string, unknown>[]).map((image) => [image.inputFormat, image.outputWidth, image.outputHeight])).toEqual([
          ['tiff', width, height],
          ['tiff', width, height],
        ]);
      });

      it('keeps non-ASCII filenames as sent: raw UTF-8 (as curl and browsers send them) and RFC 5987 filename*', async () => {
        const s = await backend.start();
        const image = await jpeg();
        const boundary = 'names-boundary';
        // Each part's headers, written byte for byte as curl -F "images=@фото 1.jpg" does: the name in UTF-8, unescaped.
        const part = (disposition: string): Buffer => Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="images"; ${disposition}\r\nContent-Type: image/jpeg\r\n\r\n`, 'utf8'),
          image,
          Buffer.from('\r\n'),
        ]);
        const body = Buffer.concat([
          part('filename="фото 1.jpg"'),
          part(`filename*=UTF-8''${encodeURIComponent('été ☀.jpg')}`),
          Buffer.from(`--${boundary}--\r\n`),
        ]);
        const answer = await call(`${s.url}/jobs`, { method: 'POST', body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
        expect(answer.status, JSON.stringify(answer.body)).toBe(202);
        expect((answer.body.images as Record<string, unknown>[]).map((stored) => stored.originalName)).toEqual(['фото 1.jpg', 'été ☀.jpg']);
      });

      it('keeps a path-traversal filename as metadata only', async () => {
        const s = await backend.start();
        const name = '../../../../tmp/escape-attempt.jpg';
        const answer = await multipart(s, [{ bytes: await jpeg(), name }]);
        expect(answer.status).toBe(202);
        expect((answer.body.images as Record<string, unknown>[])[0]?.originalName).toBe(name);
        await jobWhen(s, answer.body.id, 'succeeded');
        expect(fs.existsSync('/tmp/escape-attempt.jpg')).toBe(false);
        expect(fs.readdirSync(path.join(s.config.outputDir, String(answer.body.id)))).toEqual(['0.webp']);
      });

      it.each([
        ['options that are not JSON', '{quality:', 'invalid_options'],
        ['an unknown option', { qualty: 80 }, 'invalid_options'],
        ['a quality out of range', { quality: 0 }, 'invalid_options'],
        ['a quality that is not an integer', { quality: 50.5 }, 'invalid_options'],
        ['a quality given as a string (JSON numbers only)', { quality: '70' }, 'invalid_options'],
        ['a width given as a string', { width: '800' }, 'invalid_options'],
        ['an unknown format', { format: 'bmp' }, 'invalid_options'],
        ['a destination that is not http', { destination: { type: 'http', url: 'file:///etc/passwd' } }, 'invalid_options'],
      ])('refuses %s with 400 and leaves nothing behind', async (_what, options, code) => {
        const s = await backend.start();
        expectProblem(await multipart(s, [{ bytes: await jpeg(), name: 'a.jpg' }], options), 400, code);
        await expectNothingLeft(s);
      });

      it('refuses a body without images, and files in another field', async () => {
        const s = await backend.start();
        const empty = new FormData();
        empty.append('options', '{}');
        expectProblem(await call(`${s.url}/jobs`, { method: 'POST', body: empty }), 400, 'no_images');
        const wrongField = new FormData();
        wrongField.append('file', new Blob([await jpeg()]), 'a.jpg');
        expectProblem(await call(`${s.url}/jobs`, { method: 'POST', body: wrongField }), 400, 'unexpected_field');
        await expectNothingLeft(s);
      });

      it('says so when the options come as a file part instead of a form field', async () => {
        const s = await backend.start();
        const form = new FormData();
        form.append('images', new Blob([await jpeg()]), 'a.jpg');
        form.append('options', new Blob(['{"quality":70}']), 'options.json'); // what curl -F options=@options.json sends
        const answer = await call(`${s.url}/jobs`, { method: 'POST', body: form });
        expectProblem(answer, 400, 'invalid_options');
        expect(answer.body.detail).toMatch(/^The options field came as a file: send it as a plain form field holding JSON/);
        await expectNothingLeft(s);
      });

      it('refuses more than MAX_IMAGES_PER_JOB images with 413', async () => {
        const s = await backend.start({ MAX_IMAGES_PER_JOB: '2' });
        const bytes = await jpeg();
        const files = [1, 2, 3].map((i) => ({ bytes, name: `${i}.jpg` }));
        expectProblem(await multipart(s, files), 413, 'too_many_images');
        await delay(50);
        await expectNothingLeft(s);
      });

      it('refuses the whole job when one image is refused', async () => {
        const s = await backend.start();
        const answer = await multipart(s, [{ bytes: await jpeg(), name: 'ok.jpg' }, { bytes: Buffer.from('not an image at all'), name: 'bad.jpg' }]);
        expectProblem(answer, 415, 'unsupported_media_type');
        expect(String(answer.body.detail)).toMatch(/^Image 1: /);
        await expectNothingLeft(s);
      });
    });

    describe('ended jobs and their images', () => {
      it('shows a cancelled job\'s images as cancelled, and says so when one is downloaded', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=60000');
        expect((await call(`${s.url}/jobs/${String(body.id)}/cancel`, { method: 'POST' })).status).toBe(200);
        expect((await call(`${s.url}/jobs/${String(body.id)}`)).body).toMatchObject({ status: 'cancelled', images: [{ status: 'cancelled', location: null }] });
        const download = await call(`${s.url}/jobs/${String(body.id)}/images/0`);
        expectProblem(download, 409, 'image_not_delivered');
        expect(download.body.detail).toBe(`Job ${String(body.id)} was cancelled before image 0 was delivered; it has no result.`);
      });

      it('shows a failed job\'s images as failed, and says so when one is downloaded', async () => {
        const s = await backend.start();
        const noise = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).png().toBuffer();
        const { body } = await raw(s, noise.subarray(0, noise.length / 2), '', { 'content-type': 'image/png' }); // the header is whole, the pixels are not
        const job = await jobWhen(s, body.id, 'failed');
        expect(job).toMatchObject({ lastError: { code: 'image_corrupt' }, images: [{ status: 'failed', location: null }] });
        const download = await call(`${s.url}/jobs/${String(body.id)}/images/0`);
        expectProblem(download, 409, 'image_not_delivered');
        expect(download.body.detail).toMatch(new RegExp(`^Job ${String(body.id)} failed before image 0 was delivered \\(image_corrupt: `));
      });

      it('says a queued job\'s image is not ready yet', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=60000');
        expectProblem(await call(`${s.url}/jobs/${String(body.id)}/images/0`), 409, 'image_not_ready');
      });
    });

    describe('HTTP destinations as the API shows them', () => {
      const template = 'http://127.0.0.1:9/results/{jobId}/{index}.webp';

      it('echoes a URL template as given, braces and all, without its query', async () => {
        const s = await backend.start({ UPLOAD_ALLOWED_HOSTS: '127.0.0.1' });
        const destination = { type: 'http', url: `${template}?X-Signature=secret#frag` };
        const answer = await raw(s, await jpeg(), `?delayMs=60000&destination=${encodeURIComponent(JSON.stringify(destination))}`);
        expect(answer.status, JSON.stringify(answer.body)).toBe(202);
        expect(answer.body.destination).toEqual({ type: 'http', url: template });
        expect((await call(`${s.url}/jobs/${String(answer.body.id)}`)).body.destination).toEqual({ type: 'http', url: template });
      });

      it('quotes the template, not a made-up job id, when it refuses a destination', async () => {
        const s = await backend.start();
        const destination = { type: 'http', url: `${template}?sig=secret` };
        const answer = await raw(s, await jpeg(), `?destination=${encodeURIComponent(JSON.stringify(destination))}`);
        expectProblem(answer, 400, 'invalid_destination');
        expect(answer.body.detail).toMatch(new RegExp(`^destination ${template.replace(/[{}.?]/g, '\\$&')}: `));
        expect(answer.body.detail).not.toContain('secret');
        await expectNothingLeft(s);
      });
    });

    describe('refusals', () => {
      it('answers 413 while streaming, with or without a declared length', async () => {
        const s = await backend.start({ MAX_UPLOAD_BYTES: '1000' });
        const big = Buffer.alloc(5_000, 1);
        expectProblem(await raw(s, big), 413, 'image_too_large_bytes');
        const chunked = await call(`${s.url}/jobs`, {
          method: 'POST',
          body: Readable.toWeb(Readable.from([big.subarray(0, 2_500), big.subarray(2_500)])) as ReadableStream,
          headers: { 'content-type': 'image/jpeg' },
          duplex: 'half',
        } as RequestInit);
        expectProblem(chunked, 413, 'image_too_large_bytes');
        expectProblem(await multipart(s, [{ bytes: big, name: 'big.jpg' }]), 413, 'image_too_large_bytes');
        await delay(50);
        await expectNothingLeft(s);
      });

      it.each([
        ['text', Buffer.from('hello, this is text'), 415, 'unsupported_media_type'],
        ['HTML', Buffer.from('<!doctype html><html><body>hi</body></html>'), 415, 'unsupported_media_type'],
        ['an SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>'), 415, 'unsupported_media_type'],
        ['a pixel bomb header', pixelBombPng(50_000, 50_000), 422, 'image_too_large'],
        ['JPEG magic followed by garbage', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2_000, 0x41)]), 422, 'image_corrupt'],
      ])('refuses %s', async (_what, bytes, status, code) => {
        const s = await backend.start();
        expectProblem(await raw(s, bytes), status, code);
        await expectNothingLeft(s);
      });

      it('refuses an empty body and a content type that is no image', async () => {
        const s = await backend.start();
        expectProblem(await raw(s, Buffer.alloc(0)), 400, 'empty_body');
        expectProblem(await call(`${s.url}/jobs`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
        await expectNothingLeft(s);
      });

      it('answers 503 with Retry-After when the queue is full, and stores nothing', async () => {
        const s = await backend.start({ MAX_QUEUED_JOBS: '1' });
        const first = await raw(s, await jpeg(), '?delayMs=60000');
        expect(first.status).toBe(202);
        const second = await raw(s, await jpeg());
        expectProblem(second, 503, 'queue_full');
        expect(second.headers.get('retry-after')).toBe('30');
        expect((await s.store.listJobs({ limit: 10 }))).toHaveLength(1);
        expect(s.tempFiles()).toHaveLength(1); // the first job's one input
      });

      it('answers 503 when free disk is below MIN_FREE_DISK_BYTES', async () => {
        const s = await backend.start({ MIN_FREE_DISK_BYTES: String(Number.MAX_SAFE_INTEGER) });
        const answer = await raw(s, await jpeg());
        expectProblem(answer, 503, 'disk_low');
        expect(answer.headers.get('retry-after')).toBe('30');
        expect((await call(`${s.url}/ready`)).status).toBe(503);
        await expectNothingLeft(s);
      });

      it.each(['raw', 'multipart'] as const)('leaves no row, no temp file and no open file when the client disconnects mid-upload (%s)', async (form) => {
        const s = await backend.start();
        const image = (await jpeg(400, 400)).subarray(0, 1_000);
        const boundary = 'cut-off';
        const [headers, head] =
          form === 'raw'
            ? [{ 'content-type': 'image/jpeg' }, image]
            : [
                { 'content-type': `multipart/form-data; boundary=${boundary}` },
                Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`), image]),
              ];
        await new Promise<void>((resolve) => {
          const req = http.request(`${s.url}/jobs`, { method: 'POST', headers: { ...headers, 'content-length': '100000' } });
          req.on('error', () => resolve());
          req.write(head, () => setTimeout(() => {
            req.destroy();
            resolve();
          }, 100));
        });
        await waitFor(() => s.tempFiles().length === 0, 5_000);
        await expectNothingLeft(s);
        // The writer of the cut-off file closed it: no descriptor is left on a deleted file.
        await waitFor(() => openFilesUnder(`${s.config.tmpDir}${path.sep}`).length === 0, 5_000);
      });
    });

    describe('Idempotency-Key', () => {
      it('returns the first job with 200 and stores nothing new', async () => {
        const s = await backend.start();
        const bytes = await jpeg();
        const first = await raw(s, bytes, '?delayMs=60000', { 'idempotency-key': 'order-42' });
        const again = await raw(s, bytes, '?delayMs=60000', { 'idempotency-key': 'order-42' });
        expect(first.status).toBe(202);
        expect(again.status).toBe(200);
        expect(again.body.id).toBe(first.body.id);
        expect((await s.store.listJobs({ limit: 10 }))).toHaveLength(1);
        expect(s.tempFiles()).toHaveLength(1);
      });

      it('answers 422 idempotency_key_reused when the key comes back with other images or options, and stores nothing', async () => {
        const s = await backend.start();
        const bytes = await jpeg();
        const key = { 'idempotency-key': 'order-43' };
        const first = await raw(s, bytes, '?delayMs=60000&quality=70', key);
        expect(first.status).toBe(202);
        const otherOptions = await raw(s, bytes, '?delayMs=60000&quality=71', key);
        expectProblem(otherOptions, 422, 'idempotency_key_reused');
        expect(otherOptions.body.detail).toContain(`job ${String(first.body.id)}`);
        expectProblem(await raw(s, bytes, '?delayMs=60000', key), 422, 'idempotency_key_reused'); // quality left out: another request
        expectProblem(await raw(s, await jpeg(65, 48), '?delayMs=60000&quality=70', key), 422, 'idempotency_key_reused');
        // The same request, its options in another order, is still a repeat.
        expect((await raw(s, bytes, '?quality=70&delayMs=60000', key)).status).toBe(200);
        expect((await s.store.listJobs({ limit: 10 }))).toHaveLength(1);
        expect(s.tempFiles()).toHaveLength(1);
      });

      it('compares multipart repeats by each image and the options, not by filenames or key order', async () => {
        const s = await backend.start();
        const [a, b] = [await jpeg(10, 10), await png(20, 20)];
        const key = { 'idempotency-key': 'album-7' };
        const first = await multipart(s, [{ bytes: a, name: 'a.jpg' }, { bytes: b, name: 'b.png' }], { delayMs: 60_000, format: 'webp', priority: 2 }, key);
        expect(first.status).toBe(202);
        const renamed = await multipart(s, [{ bytes: a, name: 'x.jpg' }, { bytes: b, name: 'y.png' }], { priority: 2, delayMs: 60_000 }, key);
        expect(renamed.status).toBe(200);
        expect(renamed.body.id).toBe(first.body.id);
        expectProblem(await multipart(s, [{ bytes: b, name: 'a.jpg' }, { bytes: a, name: 'b.png' }], { delayMs: 60_000, priority: 2 }, key), 422, 'idempotency_key_reused');
        expectProblem(await multipart(s, [{ bytes: a, name: 'a.jpg' }], { delayMs: 60_000, priority: 2 }, key), 422, 'idempotency_key_reused');
        expect((await s.store.listJobs({ limit: 10 }))).toHaveLength(1);
        expect(s.tempFiles()).toHaveLength(2);
      });
    });

    describe('auth', () => {
      const token = 'a-test-token-of-some-length';

      it('requires the bearer token on every route but /health', async () => {
        const s = await backend.start({ API_TOKEN: token });
        expect((await call(`${s.url}/health`)).status).toBe(200);
        for (const route of ['/jobs', '/jobs/1', '/ready', '/openapi.json']) {
          const answer = await call(`${s.url}${route}`);
          expectProblem(answer, 401, 'unauthorized');
          expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
        }
        expectProblem(await call(`${s.url}/jobs`, { headers: { authorization: `Bearer ${token}x` } }), 401, 'unauthorized');
        expectProblem(await raw(s, await jpeg(), '', { authorization: 'Bearer wrong' }), 401, 'unauthorized');
        expect((await call(`${s.url}/jobs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
        await expectNothingLeft(s);
      });
    });

    describe('job routes', () => {
      it('lists newest first with a status filter and a keyset cursor', async () => {
        const s = await backend.start();
        const ids: unknown[] = [];
        for (let i = 0; i < 5; i++) ids.push((await raw(s, await jpeg(), '?delayMs=60000')).body.id);
        const page1 = await call(`${s.url}/jobs?limit=2&status=queued`);
        expect((page1.body.jobs as Record<string, unknown>[]).map((job) => job.id)).toEqual([ids[4], ids[3]]);
        const page2 = await call(`${s.url}/jobs?limit=2&status=queued&cursor=${String(page1.body.nextCursor)}`);
        expect((page2.body.jobs as Record<string, unknown>[]).map((job) => job.id)).toEqual([ids[2], ids[1]]);
        const page3 = await call(`${s.url}/jobs?limit=2&status=queued&cursor=${String(page2.body.nextCursor)}`);
        expect((page3.body.jobs as Record<string, unknown>[]).map((job) => job.id)).toEqual([ids[0]]);
        expect(page3.body.nextCursor).toBeNull();
        expect((await call(`${s.url}/jobs?status=failed`)).body.jobs).toEqual([]);
        expectProblem(await call(`${s.url}/jobs?status=done`), 400, 'invalid_query');
        expectProblem(await call(`${s.url}/jobs?limit=0`), 400, 'invalid_query');
        expectProblem(await call(`${s.url}/jobs?cursor=nonsense`), 400, 'invalid_cursor');
      });

      it('answers 404 for unknown jobs and routes, 405 for a wrong method', async () => {
        const s = await backend.start();
        expectProblem(await call(`${s.url}/jobs/999`), 404, 'job_not_found');
        expectProblem(await call(`${s.url}/jobs/abc`), 404, 'not_found');
        expectProblem(await call(`${s.url}/nowhere`), 404, 'not_found');
        const wrongMethod = await call(`${s.url}/jobs/1`, { method: 'DELETE' });
        expectProblem(wrongMethod, 405, 'method_not_allowed');
        expect(wrongMethod.headers.get('allow')).toBe('HEAD, GET');
        const unknownMethod = await call(`${s.url}/jobs`, { method: 'PROPFIND' });
        expectProblem(unknownMethod, 405, 'method_not_allowed');
        expect(unknownMethod.headers.get('allow')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
        expectProblem(await call(`${s.url}/nowhere`, { method: 'PROPFIND' }), 404, 'not_found');
      });

      it('cancels a queued job, deletes its temp files, and refuses to cancel it twice', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=60000');
        expect(s.tempFiles()).not.toEqual([]);
        const cancelled = await call(`${s.url}/jobs/${String(body.id)}/cancel`, { method: 'POST' });
        expect(cancelled.status).toBe(200);
        expect(cancelled.body).toMatchObject({ status: 'cancelled', lastError: { code: 'cancelled' } });
        expect(s.tempFiles()).toEqual([]);
        expectProblem(await call(`${s.url}/jobs/${String(body.id)}/cancel`, { method: 'POST' }), 409, 'job_ended');
      });

      it('runs a delayed job at once on retry, and explains why an ended job cannot be retried', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=3600000');
        const retried = await call(`${s.url}/jobs/${String(body.id)}/retry`, { method: 'POST' });
        expect(retried.status).toBe(200);
        await jobWhen(s, body.id, 'succeeded');
        expectProblem(await call(`${s.url}/jobs/${String(body.id)}/retry`, { method: 'POST' }), 409, 'job_succeeded');
        const other = await raw(s, await jpeg(), '?delayMs=3600000');
        await call(`${s.url}/jobs/${String(other.body.id)}/cancel`, { method: 'POST' });
        const refused = await call(`${s.url}/jobs/${String(other.body.id)}/retry`, { method: 'POST' });
        expectProblem(refused, 409, 'input_released');
        expect(String(refused.body.detail)).toMatch(/input images were deleted/);
      });

      it('refuses to serve a result that is not delivered yet', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=60000');
        expectProblem(await call(`${s.url}/jobs/${String(body.id)}/images/0`), 409, 'image_not_ready');
        expectProblem(await call(`${s.url}/jobs/${String(body.id)}/images/7`), 404, 'image_not_found');
      });

      it('describes every route in an OpenAPI 3.1 document', async () => {
        const s = await backend.start();
        const { body } = await call(`${s.url}/openapi.json`);
        expect(body.openapi).toBe('3.1.0');
        expect(Object.keys(body.paths as object)).toEqual(
          expect.arrayContaining([
            '/jobs', '/jobs/{id}', '/jobs/{id}/cancel', '/jobs/{id}/retry', '/jobs/{id}/images/{index}', '/health', '/ready', '/openapi.json',
            '/metrics', '/', '/stats', '/stats/samples', '/debug/memory-stats', '/debug/memory/cleanup-images',
          ]),
        );
      });
    });

    describe('GET /jobs/{id} with Prefer: wait', () => {
      const askWaiting = (s: RunningService, id: unknown, prefer: string) => call(`${s.url}/jobs/${String(id)}`, { headers: { prefer } });

      it('answers once the job has ended, not before', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=300');
        const now = await call(`${s.url}/jobs/${String(body.id)}`);
        expect(now.body.status).toBe('queued');
        expect(now.headers.get('preference-applied')).toBeNull();
        expect(now.headers.get('vary')).toMatch(/prefer/i);

        const ended = await askWaiting(s, body.id, 'wait=30');
        expect(ended.status).toBe(200);
        expect(ended.headers.get('preference-applied')).toBe('wait=30');
        expect(ended.body).toMatchObject({ status: 'succeeded', images: [{ status: 'delivered' }] });
        expect(await waitingRequests(s)).toBe(0);
      });

      it('answers with the job as it is when the wait runs out, and wakes at a cancel, with long waits cut to 60 s', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=3600000');
        const ranOut = await askWaiting(s, body.id, 'wait=1');
        expect(ranOut.headers.get('preference-applied')).toBe('wait=1');
        expect(ranOut.body.status).toBe('queued');

        const waiting = askWaiting(s, body.id, 'respond-async, wait=86400');
        await waitFor(async () => (await waitingRequests(s)) === 1 || null);
        expect((await call(`${s.url}/jobs/${String(body.id)}/cancel`, { method: 'POST' })).status).toBe(200);
        const cancelled = await waiting;
        expect(cancelled.headers.get('preference-applied')).toBe('wait=60');
        expect(cancelled.body.status).toBe('cancelled');
        expect(await waitingRequests(s)).toBe(0);
      });

      it('answers at once when the job has ended or the preference cannot be read', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=3600000');
        for (const prefer of ['wait=soon', 'wait=-1', 'wait', 'handling=lenient']) {
          const answer = await askWaiting(s, body.id, prefer);
          expect(answer.body.status, prefer).toBe('queued');
          expect(answer.headers.get('preference-applied'), prefer).toBeNull();
        }
        expect((await askWaiting(s, body.id, 'wait=0')).headers.get('preference-applied')).toBe('wait=0');
        await call(`${s.url}/jobs/${String(body.id)}/cancel`, { method: 'POST' });
        const ended = await askWaiting(s, body.id, 'wait="30"');
        expect(ended.headers.get('preference-applied')).toBe('wait=30');
        expect(ended.body.status).toBe('cancelled');
        expectProblem(await askWaiting(s, 999, 'wait=30'), 404, 'job_not_found');
      });

      it('stops waiting for a client that has gone', async () => {
        const s = await backend.start();
        const { body } = await raw(s, await jpeg(), '?delayMs=3600000');
        const request = http.get(`${s.url}/jobs/${String(body.id)}`, { headers: { prefer: 'wait=60' } });
        const failed = new Promise((resolve) => request.once('error', resolve));
        await waitFor(async () => (await waitingRequests(s)) === 1 || null);
        request.destroy();
        await failed;
        await waitFor(async () => (await waitingRequests(s)) === 0 || null);
      });
    });

    describe('large uploads', () => {
      it('stores every byte of large files as sent, in both forms, though each chunk is freed once written', async () => {
        const s = await backend.start({ MAX_UPLOAD_BYTES: String(64 * 1024 * 1024) });
        const noisePng = (width: number, height: number) =>
          sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toBuffer();
        const images = [await noisePng(1_100, 900), await noisePng(700, 500), await noisePng(1_300, 1_000)];
        const stored = async (id: unknown, index: number): Promise<Buffer> => {
          const job = await s.store.getJob(Number(id));
          return fs.readFileSync(path.join(s.config.tmpDir, `${job?.inputKey ?? ''}.${index}`));
        };
        // One buffer, so the socket's chunks hold the ends of one file and the starts of the next.
        const form = new FormData();
        images.forEach((bytes, i) => form.append('images', new Blob([bytes]), `${i}.png`));
        form.append('options', JSON.stringify({ delayMs: 3_600_000 })); // stays queued: its inputs stay in the temp store
        const encoded = new Request(s.url, { method: 'POST', body: form });
        const body = Buffer.from(await encoded.arrayBuffer());
        const many = await call(`${s.url}/jobs`, { method: 'POST', body, headers: { 'content-type': encoded.headers.get('content-type') ?? '' } });
        expect(many.status).toBe(202);
        for (const [index, bytes] of images.entries()) expect((await stored(many.body.id, index)).equals(bytes), `multipart image ${index}`).toBe(true);
        const one = await raw(s, images[2] ?? Buffer.alloc(0), '?delayMs=3600000', { 'content-type': 'image/png' });
        expect(one.status).toBe(202);
        expect((await stored(one.body.id, 0)).equals(images[2] ?? Buffer.alloc(0))).toBe(true);
      });
    });
  });
});
