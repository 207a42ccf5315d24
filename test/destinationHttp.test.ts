import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createAddressPolicy } from '../src/destination/addressPolicy.js';
import { putFile } from '../src/destination/httpUpload.js';
import { createDestinations } from '../src/destination/index.js';
import { JobFailure } from '../src/queue/errors.js';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

interface Target {
  readonly port: number;
  readonly received: Received[];
}

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A real upload target on 127.0.0.1 that answers each request (after its whole body) with `answer`. */
async function target(answer: (res: http.ServerResponse) => void): Promise<Target> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      answer(res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, received };
}

const status = (code: number, headers: http.OutgoingHttpHeaders = {}) => (res: http.ServerResponse) => res.writeHead(code, headers).end();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'destination-http-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'result.webp');
const body = Buffer.from('RIFF....WEBPVP8 pretend image bytes'.repeat(1_000));
fs.writeFileSync(file, body);

const loopbackListed = createAddressPolicy(['127.0.0.1', 'localhost']);

function upload(url: string, signal = new AbortController().signal) {
  return { url: new URL(url), file, contentType: 'image/webp', headers: { 'x-upload-token': 't0k' }, signal };
}

async function failure(promise: Promise<unknown>): Promise<JobFailure> {
  const thrown = await promise.then(() => null, (error: unknown) => error);
  expect(thrown).toBeInstanceOf(JobFailure);
  return thrown as JobFailure;
}

describe('HTTP destination', () => {
  it('PUTs the file streamed with its Content-Type, Content-Length and the client headers', async () => {
    const server = await target(status(200));
    await putFile(upload(`http://127.0.0.1:${server.port}/bucket/1/0.webp?sig=abc`), loopbackListed);
    expect(server.received).toHaveLength(1);
    const [request] = server.received;
    expect(request).toMatchObject({ method: 'PUT', url: '/bucket/1/0.webp?sig=abc' });
    expect(request?.headers).toMatchObject({ 'content-type': 'image/webp', 'content-length': String(body.length), 'x-upload-token': 't0k' });
    expect(request?.body.equals(body)).toBe(true);
  });

  it('classes answers: 5xx, 408, 425 and 429 transient; other 4xx permanent destination_rejected', async () => {
    for (const [code, expected] of [
      [500, { code: 'destination_failed', permanent: false }],
      [503, { code: 'destination_failed', permanent: false }],
      [408, { code: 'destination_busy', permanent: false }],
      [425, { code: 'destination_busy', permanent: false }],
      [429, { code: 'destination_busy', permanent: false }],
      [403, { code: 'destination_rejected', permanent: true }],
      [404, { code: 'destination_rejected', permanent: true }],
    ] as const) {
      const server = await target(status(code));
      const error = await failure(putFile(upload(`http://127.0.0.1:${server.port}/x?sig=secret`), loopbackListed));
      expect({ code: error.code, permanent: error.permanent }, String(code)).toEqual(expected);
      expect(error.message).not.toContain('secret');
    }
  });

  it('refuses a redirect as permanent destination_redirect, and never follows it', async () => {
    const elsewhere = await target(status(200));
    const server = await target(status(307, { location: `http://127.0.0.1:${elsewhere.port}/stolen` }));
    const error = await failure(putFile(upload(`http://127.0.0.1:${server.port}/x`), loopbackListed));
    expect(error).toMatchObject({ code: 'destination_redirect', permanent: true });
    expect(server.received).toHaveLength(1);
    expect(elsewhere.received).toHaveLength(0);
  });

  it('gives up on a destination that never answers as soon as the attempt is aborted', async () => {
    const server = await target(() => undefined);
    const controller = new AbortController();
    const uploading = putFile(upload(`http://127.0.0.1:${server.port}/x`, controller.signal), loopbackListed);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const reason = new Error('attempt timed out');
    controller.abort(reason);
    await expect(uploading).rejects.toBe(reason);
  });

  it('treats a refused connection as transient', async () => {
    const server = await target(status(200));
    const { port } = server;
    for (const open of servers.splice(0)) await new Promise((resolve) => open.close(resolve));
    expect(await failure(putFile(upload(`http://127.0.0.1:${port}/x`), loopbackListed))).toMatchObject({
      code: 'destination_unreachable',
      permanent: false,
    });
  });

  it('refuses every loopback spelling before connecting when nothing is listed', async () => {
    const server = await target(status(200));
    const open = createAddressPolicy(undefined);
    const hosts = ['127.0.0.1', '2130706433', '0x7f000001', '0177.0.0.1', '0x7f.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '0.0.0.0'];
    for (const host of hosts) {
      const error = await failure(putFile(upload(`http://${host}:${server.port}/x`), open));
      expect({ host, code: error.code, permanent: error.permanent }).toEqual({ host, code: 'destination_not_allowed', permanent: true });
    }
    expect(server.received).toHaveLength(0);
  });

  it('checks the addresses a name resolves to: localhost is refused unless listed', async () => {
    const server = await target(status(200));
    const error = await failure(putFile(upload(`http://localhost:${server.port}/x`), createAddressPolicy(undefined)));
    expect(error).toMatchObject({ code: 'destination_not_allowed', permanent: true });
    expect(error.message).toMatch(/localhost resolves to .*loopback/);
    expect(server.received).toHaveLength(0);
    await putFile(upload(`http://localhost:${server.port}/x`), createAddressPolicy(['localhost']));
    expect(server.received).toHaveLength(1);
  });

  it('refuses a host missing from UPLOAD_ALLOWED_HOSTS', async () => {
    const server = await target(status(200));
    const error = await failure(putFile(upload(`http://127.0.0.1:${server.port}/x`), createAddressPolicy(['uploads.example.com'])));
    expect(error).toMatchObject({ code: 'destination_not_allowed', permanent: true });
    expect(server.received).toHaveLength(0);
  });
});

describe('destinations', () => {
  it('records and logs the URL without its query, and fills in {jobId} and {index}', async () => {
    const server = await target(status(201));
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }));
    const destinations = createDestinations({ outputDir: dir, uploadAllowedHosts: ['127.0.0.1'], log });
    const url = `http://127.0.0.1:${server.port}/out/{jobId}/{index}.webp?X-Amz-Signature=deadbeef`;
    const location = await destinations.deliver({ type: 'http', url }, { jobId: 7, index: 2, file, format: 'webp', signal: new AbortController().signal });
    expect(location).toBe(`http://127.0.0.1:${server.port}/out/7/2.webp`);
    expect(server.received[0]?.url).toBe('/out/7/2.webp?X-Amz-Signature=deadbeef');
    expect(lines.join('')).toContain('/out/7/2.webp');
    expect(lines.join('')).not.toContain('deadbeef');
  });

  it('takes each image its own entry of urls', async () => {
    const server = await target(status(200));
    const destinations = createDestinations({ outputDir: dir, uploadAllowedHosts: ['127.0.0.1'], log: pino({ level: 'silent' }) });
    const urls = [0, 1].map((index) => `http://127.0.0.1:${server.port}/image-${index}`);
    await destinations.deliver({ type: 'http', urls }, { jobId: 1, index: 1, file, format: 'webp', signal: new AbortController().signal });
    expect(server.received.map((request) => request.url)).toEqual(['/image-1']);
  });
});
