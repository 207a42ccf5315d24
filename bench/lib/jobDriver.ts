import type http from 'node:http';
import { send } from './httpLoad.js';

export interface DriveOptions {
  /**
   * The base URLs of the service's instances: the nth job is submitted to
   * `bases[n % bases.length]`, as a round-robin load balancer would, and
   * waited for on the instance that took it.
   */
  readonly bases: readonly string[];
  readonly agent: http.Agent;
  /** Images sent as the raw bodies of the submissions, in turn: the nth job sends `bodies[n % bodies.length]`. */
  readonly bodies: readonly Buffer[];
  readonly contentType: string;
  readonly total: number;
  /** Jobs kept outstanding (submitted and not yet ended). */
  readonly inFlight: number;
  /** Told of each job as it ends, with its milliseconds from submission to the end seen: a run cut short still reports what ended. */
  readonly onEnd?: (status: string, latencyMs: number) => void;
}

export interface DriveResult {
  readonly seconds: number;
  /** Jobs by final status. */
  readonly statuses: Readonly<Record<string, number>>;
}

/** How long each `GET /jobs/{id}` may wait for its job to end (the service's limit). */
const WAIT_SECONDS = 60;
const RETRY_MS = 100;
/** A run in which no job ends for this long is stuck: give up and say so. */
const STALL_MS = 120_000;

const terminal = new Set(['succeeded', 'failed', 'cancelled']);
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Pushes `total` image jobs through `POST /jobs`, keeping `inFlight` of them
 * outstanding: each of `inFlight` clients submits, waits for its job to end
 * with `GET /jobs/{id}` and `Prefer: wait=60` (no polling: the answer comes
 * when the job ends, or, when another instance ended it, when the waiting
 * one next reads it), and submits the next. Timed from the first submission
 * to the last end seen.
 */
export async function driveJobs(options: DriveOptions): Promise<DriveResult> {
  const statuses: Record<string, number> = {};
  let submitted = 0;
  let lastEnd = performance.now();

  async function submit(base: string, body: Buffer): Promise<number> {
    for (;;) {
      const reply = await send(options.agent, 'POST', `${base}/jobs`, body, { 'content-type': options.contentType });
      if (reply.status === 202) return (JSON.parse(reply.text) as { id: number }).id;
      // 503 is backpressure (queue full, disk low): wait as Retry-After asks, briefly.
      if (reply.status !== 503) throw new Error(`POST /jobs answered ${reply.status}: ${reply.text}`);
      await delay(RETRY_MS);
    }
  }

  async function ended(base: string, id: number): Promise<string> {
    for (;;) {
      const reply = await send(options.agent, 'GET', `${base}/jobs/${id}`, undefined, { prefer: `wait=${WAIT_SECONDS}` });
      if (reply.status !== 200) throw new Error(`GET /jobs/${id} answered ${reply.status}: ${reply.text}`);
      const { status } = JSON.parse(reply.text) as { status: string };
      if (terminal.has(status)) {
        lastEnd = performance.now();
        return status;
      }
      if (performance.now() - lastEnd > STALL_MS) throw new Error(`no job ended for ${STALL_MS / 1_000} s; job ${id} is ${status}`);
    }
  }

  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.inFlight }, async () => {
      while (submitted < options.total) {
        const body = options.bodies[submitted % options.bodies.length] as Buffer;
        const base = options.bases[submitted % options.bases.length] as string;
        submitted += 1;
        const sent = performance.now();
        const status = await ended(base, await submit(base, body));
        statuses[status] = (statuses[status] ?? 0) + 1;
        options.onEnd?.(status, performance.now() - sent);
      }
    }),
  );
  return { seconds: (lastEnd - started) / 1_000, statuses };
}
