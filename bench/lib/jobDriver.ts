import type http from 'node:http';
import { send } from './httpLoad.js';

export interface DriveOptions {
  /** The service's base URL. */
  readonly base: string;
  readonly agent: http.Agent;
  /** One image, sent as the raw body of each submission. */
  readonly body: Buffer;
  readonly contentType: string;
  readonly total: number;
  /** Jobs kept outstanding (submitted and not yet ended). */
  readonly inFlight: number;
}

export interface DriveResult {
  readonly seconds: number;
  /** Jobs by final status. */
  readonly statuses: Readonly<Record<string, number>>;
}

/** Jobs per page the poller reads, newest first: a page more is read only while an outstanding job is older. */
const PAGE = 20;
const POLL_MS = 100;
/** A run in which no job ends for this long is stuck: give up and say so. */
const STALL_MS = 120_000;

const terminal = new Set(['succeeded', 'failed', 'cancelled']);
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Pushes `total` image jobs through `POST /jobs`, keeping `inFlight` of them
 * outstanding: each of `inFlight` clients submits, waits for its job to end,
 * and submits the next. One poller reads the newest jobs (`GET /jobs`, page
 * by page down to the oldest outstanding one) every 100 ms for all of them,
 * so polling costs the service about 10 requests a second whatever
 * `inFlight` is. Timed from the first submission to the last end seen.
 */
export async function driveJobs(options: DriveOptions): Promise<DriveResult> {
  const waiting = new Map<number, (status: string) => void>();
  const statuses: Record<string, number> = {};
  let submitted = 0;
  let lastEnd = performance.now();
  let running = true;

  async function submit(): Promise<number> {
    for (;;) {
      const reply = await send(options.agent, 'POST', `${options.base}/jobs`, options.body, { 'content-type': options.contentType });
      if (reply.status === 202) return (JSON.parse(reply.text) as { id: number }).id;
      // 503 is backpressure (queue full, disk low): wait as Retry-After asks, briefly.
      if (reply.status !== 503) throw new Error(`POST /jobs answered ${reply.status}: ${reply.text}`);
      await delay(POLL_MS);
    }
  }

  async function poll(): Promise<void> {
    while (running) {
      await delay(POLL_MS);
      if (waiting.size === 0) continue;
      const oldest = Math.min(...waiting.keys());
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? `limit=${PAGE}` : `limit=${PAGE}&cursor=${cursor}`;
        const page = JSON.parse((await send(options.agent, 'GET', `${options.base}/jobs?${query}`)).text) as { jobs: { id: number; status: string }[]; nextCursor: string | null };
        for (const job of page.jobs) {
          const resolve = waiting.get(job.id);
          if (resolve === undefined || !terminal.has(job.status)) continue;
          waiting.delete(job.id);
          lastEnd = performance.now();
          resolve(job.status);
        }
        cursor = (page.jobs.at(-1)?.id ?? 0) > oldest ? page.nextCursor : null;
      } while (cursor !== null);
      if (performance.now() - lastEnd > STALL_MS) throw new Error(`no job ended for ${STALL_MS / 1_000} s; waiting for ${[...waiting.keys()].join(', ')}`);
    }
  }

  const started = performance.now();
  const poller = poll();
  const clients = Array.from({ length: options.inFlight }, async () => {
    while (submitted < options.total) {
      submitted += 1;
      const id = await submit();
      const status = await new Promise<string>((resolve) => waiting.set(id, resolve));
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  });
  try {
    // A stalled poller rejects and ends the run; otherwise the clients finish first.
    await Promise.race([Promise.all(clients), poller]);
  } finally {
    running = false;
  }
  await poller;
  return { seconds: (lastEnd - started) / 1_000, statuses };
}
