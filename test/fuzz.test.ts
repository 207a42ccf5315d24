import http from 'node:http';
import fc from 'fast-check';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { serviceBackends } from './support/serviceBackends.js';
import { waitFor } from './support/wait.js';

interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

function send(url: string, request: FuzzRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${request.path}`, { method: request.method, headers: request.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    // The server may answer and close before the body is sent (a 413 or 415 as the bytes arrive).
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve(-1) : reject(error)));
    req.end(request.body);
  });
}

/** Flips bits and cuts the tail of a valid image. */
const mutatedImage = (image: Buffer) =>
  fc
    .record({ flips: fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 8 }), keep: fc.double({ min: 0, max: 1, noNaN: true }) })
    .map(({ flips, keep }) => {
      const bytes = Buffer.from(image);
      for (const flip of flips) {
        const at = flip.at % bytes.length;
        bytes[at] = (bytes[at] ?? 0) ^ (1 << flip.bit);
      }
      return keep > 0.7 ? bytes : bytes.subarray(0, Math.floor(bytes.length * (0.3 + keep)));
    });

const printable = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.=&%{}[]":,/?'.split('')), maxLength: 40 });

function multipartBody(boundary: string, parts: { name: string; filename?: string; body: Buffer }[], closing: boolean): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n`), part.body, Buffer.from('\r\n'));
  }
  if (closing) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

function requests(image: Buffer) {
  const body = fc.oneof(mutatedImage(image), fc.uint8Array({ maxLength: 3_000 }).map((bytes) => Buffer.from(bytes)), fc.constant(image));
  const raw = fc.record({
    method: fc.constant('POST'),
    path: printable.map((query) => `/jobs?${query}`),
    headers: fc.record({
      'content-type': fc.constantFrom('image/jpeg', 'image/png', 'application/octet-stream', 'text/plain', 'image/', 'application/json'),
      'idempotency-key': printable,
    }, { requiredKeys: ['content-type'] }),
    body,
  });
  const multipart = fc
    .record({
      boundary: fc.constantFrom('xyz', 'a'.repeat(70), '----b'),
      declared: fc.constantFrom('xyz', 'other', ''),
      parts: fc.array(
        fc.record({ name: fc.constantFrom('images', 'options', 'other'), filename: fc.option(printable, { nil: undefined }), body: fc.oneof(body, printable.map((text) => Buffer.from(text))) }),
        { maxLength: 3 },
      ),
      closing: fc.boolean(),
    })
    .map(({ boundary, declared, parts, closing }) => ({
      method: 'POST',
      path: '/jobs',
      headers: { 'content-type': declared === '' ? 'multipart/form-data' : `multipart/form-data; boundary=${declared === 'xyz' ? boundary : declared}` },
      body: multipartBody(boundary, parts, closing),
    }));
  const other = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
    path: fc.oneof(printable.map((tail) => `/jobs/${tail}`), printable.map((query) => `/jobs?${query}`), printable.map((tail) => `/${tail}`)),
    headers: fc.constant({}),
    body: fc.constant(Buffer.alloc(0)),
  });
  return fc.oneof(raw, multipart, other);
}

describe.each(serviceBackends)('the service on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    describe('random and mutated requests', () => {
      it('never get a 5xx (but 503), never stop the process, and leave no temp file of a refused submission', async () => {
        const s = await backend.start({ MAX_UPLOAD_BYTES: '200000', MAX_IMAGES_PER_JOB: '2', MAX_ATTEMPTS: '1' });
        const image = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#3a6' } }).jpeg().toBuffer();
        const seen = new Map<number, number>();
        await fc.assert(
          fc.asyncProperty(requests(image), async (request) => {
            const status = await send(s.url, request);
            seen.set(status, (seen.get(status) ?? 0) + 1);
            expect(status >= 500 && status !== 503, `${request.method} ${request.path} answered ${status}`).toBe(false);
          }),
          {
            numRuns: 250,
            // Always among the requests, whatever the seed: an accepted raw and an accepted multipart submission.
            examples: [
              [{ method: 'POST', path: '/jobs', headers: { 'content-type': 'image/jpeg' }, body: image }],
              [{ method: 'POST', path: '/jobs', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: multipartBody('xyz', [{ name: 'images', filename: 'a.jpg', body: image }], true) }],
            ],
          },
        );
        expect((await fetch(`${s.url}/health`)).status).toBe(200);
        // Every accepted job ends; then no temp file may remain.
        await waitFor(async () => (await s.store.liveCount()) === 0, 20_000);
        await waitFor(() => s.tempFiles().length === 0, 5_000);
        // The run exercised acceptance and refusal both.
        expect(seen.get(202) ?? 0).toBeGreaterThan(0);
        expect([...seen.keys()].some((status) => status >= 400 && status < 500)).toBe(true);
      });
    });
  });
});
