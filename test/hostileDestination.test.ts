/**
 * HTTP destinations that misbehave, played by a real HTTP server on another
 * loopback port: jobs submitted through the real API retry on 5xx with
 * backoff, give up after maxAttempts, time out on a server that never
 * answers, and never follow a redirect.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningService } from './support/service.js';
import { serviceBackends } from './support/serviceBackends.js';
import { jobEnded, submitRaw } from './support/http.js';
import { waitFor } from './support/wait.js';

interface Received {
  readonly method: string;
  readonly path: string;
  readonly body: Buffer;
  readonly at: number;
}

interface Target {
  readonly origin: string;
  readonly received: Received[];
  /** Connections open now. */
  openConnections(): number;
}

const targets: http.Server[] = [];
afterEach(async () => {
  for (const server of targets.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/**
 * A destination server on 127.0.0.1. `answer` sees the request after its
 * whole body arrived, with the count of requests so far (1 for the first).
 */
async function startTarget(answer: (res: http.ServerResponse, count: number) => void): Promise<Target> {
  const received: Received[] = [];
  let open = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', path: req.url ?? '', body: Buffer.concat(chunks), at: Date.now() });
      answer(res, received.length);
    });
  });
  server.on('connection', (socket) => {
    open += 1;
    socket.on('close', () => {
      open -= 1;
    });
  });
  targets.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, openConnections: () => open };
}

const status = (code: number) => (res: http.ServerResponse) => {
  res.statusCode = code;
  res.end();
};

const RETRY_BASE_MS = 200;

const jpeg = (): Promise<Buffer> => sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 120, b: 200 } } }).jpeg().toBuffer();

/** Submits one image whose result goes to `url`. */
async function submitTo(s: RunningService, url: string, maxAttempts: number): Promise<number> {
  const destination = encodeURIComponent(JSON.stringify({ type: 'http', url }));
  const answer = await submitRaw(s.url, await jpeg(), `?maxAttempts=${maxAttempts}&destination=${destination}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  return Number(answer.body.id);
}

/** The job's temp files go right after its end is recorded (the scheduler releases them next). */
const tempReleased = (s: RunningService): Promise<boolean> => waitFor(() => s.tempFiles().length === 0, 2_000);

const eventsOf = async (s: RunningService, id: number) => (await s.store.listEvents(id)).map((event) => ({ kind: event.kind, code: event.error?.code ?? null, at: event.at }));

describe.each(serviceBackends)('the service on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    const startWithDestinations = (env: Record<string, string> = {}): Promise<RunningService> =>
      backend.start({ UPLOAD_ALLOWED_HOSTS: '127.0.0.1', RETRY_BASE_MS: String(RETRY_BASE_MS), RETRY_MAX_MS: '1000', ...env });

    describe('an HTTP destination that misbehaves', () => {
      it('answering 500 twice then 200: the job succeeds on the third attempt, each retry after a backoff of at least RETRY_BASE_MS', async () => {
        const target = await startTarget((res, count) => status(count <= 2 ? 500 : 200)(res));
        const s = await startWithDestinations();
        const id = await submitTo(s, `${target.origin}/results/{jobId}.webp`, 5);

        const job = await jobEnded(s.url, id);
        expect(job).toMatchObject({ status: 'succeeded', attempts: 3, images: [{ status: 'delivered' }] });
        expect(target.received.map((request) => [request.method, request.path])).toEqual([1, 2, 3].map(() => ['PUT', `/results/${id}.webp`]));
        const delivered = await sharp(target.received[2]?.body).metadata();
        expect(delivered).toMatchObject({ format: 'webp', width: 64, height: 48 });

        const events = await eventsOf(s, id);
        expect(events.map((event) => event.kind)).toEqual(['started', 'retrying', 'started', 'retrying', 'started', 'succeeded']);
        // A retry starts no earlier than its backoff allows after the failure before it.
        for (const failure of [1, 3]) {
          expect((events[failure + 1]?.at ?? 0) - (events[failure]?.at ?? 0)).toBeGreaterThanOrEqual(RETRY_BASE_MS);
        }
        await tempReleased(s);
      });

      it('always answering 500: the job fails after maxAttempts attempts and its temp files are released', async () => {
        const target = await startTarget(status(500));
        const s = await startWithDestinations();
        const id = await submitTo(s, `${target.origin}/results/{jobId}.webp`, 3);

        const job = await jobEnded(s.url, id);
        expect(job).toMatchObject({ status: 'failed', attempts: 3, lastError: { code: 'destination_failed' }, images: [{ status: 'failed' }] });
        // The last attempt's message says it was the last, and promises nothing.
        expect((job.lastError as { message: string }).message).toMatch(/answered 500; attempt 3 of 3, none left$/);
        expect((job.lastError as { message: string }).message).not.toMatch(/retr/);
        expect(target.received).toHaveLength(3);
        expect((await eventsOf(s, id)).map((event) => event.kind)).toEqual(['started', 'retrying', 'started', 'retrying', 'started', 'failed']);
        await tempReleased(s);
      });

      it('never answering: each attempt times out as a transient failure (attempt_timeout), and the upload connection is dropped', async () => {
        const target = await startTarget(() => undefined);
        const s = await startWithDestinations({ JOB_TIMEOUT_MS: '500' });
        const id = await submitTo(s, `${target.origin}/results/{jobId}.webp`, 2);

        const job = await jobEnded(s.url, id);
        expect(job).toMatchObject({ status: 'failed', attempts: 2, lastError: { code: 'attempt_timeout' } });
        expect((await eventsOf(s, id)).map((event) => [event.kind, event.code])).toEqual([
          ['started', null],
          ['retrying', 'attempt_timeout'],
          ['started', null],
          ['failed', 'attempt_timeout'],
        ]);
        expect(target.received).toHaveLength(2);
        // The aborted attempts stopped their network work: no upload connection stays open.
        await waitFor(() => target.openConnections() === 0, 5_000);
        await tempReleased(s);
      });

      it('redirecting to another loopback port: the redirect is not followed and the job fails permanently at its first attempt', async () => {
        const elsewhere = await startTarget(status(200));
        const target = await startTarget((res) => {
          res.writeHead(307, { location: `${elsewhere.origin}/stolen.webp` });
          res.end();
        });
        const s = await startWithDestinations();
        const id = await submitTo(s, `${target.origin}/results/{jobId}.webp`, 5);

        const job = await jobEnded(s.url, id);
        expect(job).toMatchObject({ status: 'failed', attempts: 1 });
        expect(job.lastError).toMatchObject({ code: 'destination_redirect' });
        expect(target.received).toHaveLength(1);
        expect(elsewhere.received).toEqual([]);
        await tempReleased(s);
      });
    });
  });
});
