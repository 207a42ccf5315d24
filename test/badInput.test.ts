/**
 * Bad input against the service as `npm start` runs it (a separate process):
 * a corpus of truncated, corrupt, empty, non-image, oversized and pixel-bomb
 * inputs, each sent as a raw body and as multipart. Each gets a 4xx
 * problem+json, or is accepted and then fails permanently after one attempt;
 * never a 5xx. The process stays up, refused inputs leave no row, and nothing
 * stays in temp.
 */
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpServiceProcesses, newDataDir, readDatabase, startServiceProcess, tempFiles, type ServiceProcess } from './support/childService.js';
import { call, expectProblem, jobEnded, submitMultipart, submitRaw, type Answer } from './support/http.js';
import { waitFor } from './support/wait.js';

const MAX_UPLOAD_BYTES = 1_000_000;

/** What the service must do with an input: refuse it with this status and code, or accept it and then fail it for good. */
type Expected = { readonly status: number; readonly code: string } | { readonly failsWith: string };

interface Input {
  readonly name: string;
  readonly bytes: Buffer;
  readonly raw: Expected;
  readonly multipart: Expected;
}

const noise = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

/** A PNG chunk: length, type, data and CRC. */
function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const framing = Buffer.alloc(8);
  framing.writeUInt32BE(data.length, 0);
  framing.writeUInt32BE(zlib.crc32(body), 4);
  return Buffer.concat([framing.subarray(0, 4), body, framing.subarray(4)]);
}

/**
 * A well-formed PNG of a few dozen bytes whose header claims
 * `width`×`height`: a valid IHDR, a token IDAT (a header read stops at the
 * first IDAT) and IEND.
 */
function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(16))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A GIF89a whose logical screen and only frame claim 65535x65535, with a one-pixel LZW body. */
function gifClaimingHugeScreen(): Buffer {
  const screen = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00];
  const frame = [0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00];
  const pixels = [0x02, 0x02, 0x4c, 0x01, 0x00];
  return Buffer.concat([Buffer.from('GIF89a'), Buffer.from([...screen, ...frame, ...pixels, 0x3b])]);
}

/** Deterministic bytes that start with no known magic number. */
function pseudoRandomBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = 0x2545f491;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    bytes[i] = state >>> 24;
  }
  bytes[0] = 0x00;
  return bytes;
}

async function buildCorpus(): Promise<Input[]> {
  const jpeg = await noise(600, 400).jpeg().toBuffer();
  const png = await noise(300, 200).png().toBuffer();
  // The frame header (SOF0) says 0x0 pixels: the header itself is unreadable.
  const corruptHeader = Buffer.from(jpeg);
  const sof = corruptHeader.indexOf(Buffer.from([0xff, 0xc0]));
  corruptHeader.writeUInt32BE(0, sof + 5);
  const refused = (status: number, code: string): Expected => ({ status, code });
  const both = (expected: Expected) => ({ raw: expected, multipart: expected });
  return [
    { name: 'a JPEG cut off after its header', bytes: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), ...both({ failsWith: 'image_corrupt' }) },
    { name: 'a PNG cut off after its header', bytes: png.subarray(0, Math.floor(png.length * 0.5)), ...both({ failsWith: 'image_corrupt' }) },
    { name: 'a JPEG with a corrupt frame header', bytes: corruptHeader, ...both(refused(422, 'image_corrupt')) },
    { name: 'zero bytes', bytes: Buffer.alloc(0), raw: refused(400, 'empty_body'), multipart: refused(415, 'unsupported_media_type') },
    { name: 'text', bytes: Buffer.from('Dear service, please convert this letter to WebP.\n'), ...both(refused(415, 'unsupported_media_type')) },
    { name: 'HTML', bytes: Buffer.from('<!doctype html><html><body><img src="x.jpg"></body></html>'), ...both(refused(415, 'unsupported_media_type')) },
    { name: 'random bytes', bytes: pseudoRandomBytes(4_096), ...both(refused(415, 'unsupported_media_type')) },
    { name: 'a PNG header claiming 50000x50000', bytes: pngClaiming(50_000, 50_000), ...both(refused(422, 'image_too_large')) },
    { name: 'a GIF with a 65535x65535 logical screen', bytes: gifClaimingHugeScreen(), ...both(refused(422, 'image_too_large')) },
    { name: 'JPEG magic followed by garbage', bytes: Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2_000, 0x41)]), ...both(refused(422, 'image_corrupt')) },
    {
      name: 'an SVG referencing a local file',
      bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="file:///etc/passwd" width="10" height="10"/></svg>'),
      ...both(refused(415, 'unsupported_media_type')),
    },
    { name: 'a JPEG over MAX_UPLOAD_BYTES', bytes: Buffer.concat([jpeg, Buffer.alloc(MAX_UPLOAD_BYTES, 0x20)]), ...both(refused(413, 'image_too_large_bytes')) },
  ];
}

describe('bad input sent to the service process', async () => {
  const corpus = await buildCorpus();
  const cases = corpus.flatMap((input) => (['raw', 'multipart'] as const).map((form) => ({ input, form })));
  let service: ServiceProcess;
  let exitedEarly = false;
  let acceptedJobs = 0;

  beforeAll(async () => {
    service = await startServiceProcess(newDataDir(), { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) });
    void service.exited.then(() => {
      exitedEarly = true;
    });
  });
  afterAll(cleanUpServiceProcesses);

  const send = (form: 'raw' | 'multipart', bytes: Buffer): Promise<Answer> =>
    form === 'raw' ? submitRaw(service.url, bytes) : submitMultipart(service.url, [{ bytes, name: 'upload.jpg' }]);
  const jobRows = (): number => readDatabase(service.dataDir, (db) => (db.prepare('SELECT count(*) AS n FROM jobs').get() as { n: number }).n);

  it.each(cases)('$input.name sent as $form gets a 4xx problem or fails permanently after one attempt, and leaves nothing behind', async ({ input, form }) => {
    const rowsBefore = jobRows();
    const answer = await send(form, input.bytes);
    const expected = input[form];
    if ('status' in expected) {
      expectProblem(answer, expected.status, expected.code);
      expect(jobRows()).toBe(rowsBefore);
    } else {
      expect(answer.status, JSON.stringify(answer.body)).toBe(202);
      acceptedJobs += 1;
      const job = await jobEnded(service.url, answer.body.id);
      expect(job).toMatchObject({ status: 'failed', attempts: 1, lastError: { code: expected.failsWith } });
      const events = readDatabase(service.dataDir, (db) =>
        db.prepare('SELECT attempt, kind, error_code AS code FROM job_events WHERE job_id = ? ORDER BY id').all(Number(answer.body.id)),
      );
      expect(events).toEqual([
        { attempt: 1, kind: 'started', code: null },
        { attempt: 1, kind: 'failed', code: expected.failsWith },
      ]);
    }
    await waitFor(() => tempFiles(service.dataDir).length === 0, 2_000);
  });

  it('is still up after the whole corpus, holds rows only for the inputs it accepted, and still converts a good image', async () => {
    expect(exitedEarly, service.logTail()).toBe(false);
    expect((await call(`${service.url}/health`)).status).toBe(200);
    expect(jobRows()).toBe(acceptedJobs);
    const good = await submitRaw(service.url, await noise(64, 48).jpeg().toBuffer());
    expect(good.status).toBe(202);
    expect((await jobEnded(service.url, good.body.id)).status).toBe('succeeded');
    expect(tempFiles(service.dataDir)).toEqual([]);
  });
});
