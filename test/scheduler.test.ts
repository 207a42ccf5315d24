import os from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/jobs/store.js';
import type { Job } from '../src/jobs/types.js';
import { PermanentError, TransientError } from '../src/queue/errors.js';
import { createScheduler, type AttemptContext, type JobHandler, type Scheduler, type SchedulerOptions } from '../src/queue/scheduler.js';
import { DiskFullError } from '../src/storage/diskFull.js';
import { insertJob, newJob } from './support/db.js';
import { storeBackends } from './support/stores.js';
import { delay, waitFor } from './support/wait.js';

const silent = pino({ level: 'silent' });
const running: Scheduler[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((scheduler) => scheduler.stop(0)));
});

function handler(perform: (context: AttemptContext) => Promise<void> | void): JobHandler & { released: number[] } {
  const released: number[] = [];
  return {
    released,
    perform: (context) => perform(context) as Promise<void>,
    release: async (job: Job) => {
      released.push(job.id);
    },
  };
}

function scheduler(store: JobStore, work: JobHandler, overrides: Partial<SchedulerOptions> = {}): Scheduler {
  const created = createScheduler({
    store,
    handler: work,
    log: silent,
    maxConcurrentJobs: 2,
    jobTimeoutMs: 5_000,
    retryBaseMs: 10,
    retryMaxMs: 20,
    ...overrides,
  });
  running.push(created);
  return created;
}

/** A logger that keeps its lines, parsed, for a test to read. */
function recordingLog(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/** The log lines that end an attempt of `jobId`: those carrying its outcome. */
const attemptEnds = (lines: readonly Record<string, unknown>[], jobId: number) =>
  lines.filter((line) => line.jobId === jobId && line.outcome !== undefined).map((line) => ({ attempt: line.attempt, outcome: line.outcome, msg: line.msg, err: line.err }));

const insert = async (store: JobStore, fields = {}): Promise<Job> => (await insertJob(store, newJob({ runAt: Date.now(), ...fields }), Date.now())).job;

/** The store with its claims counted: the scheduler's looks at the queue. */
function countingClaims(store: JobStore): { counted: JobStore; claims: () => number } {
  let claims = 0;
  return { counted: { ...store, claimDue: (...args) => ((claims += 1), store.claimDue(...args)) }, claims: () => claims };
}

describe.each(storeBackends)('the scheduler on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
      it('never runs more than MAX_CONCURRENT_JOBS attempts at once', async () => {
        const { store } = await backend.open();
        let inFlight = 0;
        let peak = 0;
        const work = handler(async () => {
          inFlight += 1;
          peak = Math.max(peak, inFlight);
          await delay(20);
          inFlight -= 1;
        });
        for (let i = 0; i < 12; i++) await insert(store);
        await scheduler(store, work, { maxConcurrentJobs: 3 }).start();
        await waitFor(async () => (await store.countByStatus()).succeeded === 12);
        expect(peak).toBe(3);
        expect(work.released).toHaveLength(12);
      });

      it('sleeps while idle and wakes at once when told of a new job', async () => {
        const { store } = await backend.open();
        const { counted, claims } = countingClaims(store);
        const s = scheduler(counted, handler(() => undefined));
        await s.start();
        await delay(300);
        expect(claims()).toBe(1); // one look at start, then no polling
        const job = await insert(store);
        // No timer is set while nothing is queued: only the insert's signal wakes the loop.
        await waitFor(async () => (await store.getJob(job.id))?.status === 'succeeded');
        expect(claims()).toBeLessThanOrEqual(3);
      });

      it('is woken by a new job only when the job is due before the loop would look anyway', async () => {
        const { store } = await backend.open();
        const { counted, claims } = countingClaims(store);
        const s = scheduler(counted, handler(() => undefined));
        await s.start();
        await delay(20);
        expect(claims()).toBe(1);
        const inAnHour = await insert(store, { runAt: Date.now() + 3_600_000 });
        // Sleeping with no timer, its signal must wake the loop to set one.
        await delay(50);
        expect(claims()).toBe(2);
        const later = await insert(store, { runAt: Date.now() + 7_200_000 });
        // The timer for the first fires earlier: no need to look now.
        await delay(50);
        expect(claims()).toBe(2);
        const soon = await insert(store, { runAt: Date.now() + 100 });
        await waitFor(async () => (await store.getJob(soon.id))?.status === 'succeeded', 2_000);
        expect(claims()).toBeGreaterThanOrEqual(3);
        expect((await store.getJob(inAnHour.id))?.status).toBe('queued');
        expect((await store.getJob(later.id))?.status).toBe('queued');
      });

      it('wakes by itself when a delayed job becomes due', async () => {
        const { store } = await backend.open();
        const s = scheduler(store, handler(() => undefined));
        await s.start();
        await delay(20);
        const job = await insert(store, { runAt: Date.now() + 200 });
        await delay(100);
        expect((await store.getJob(job.id))?.status).toBe('queued');
        await waitFor(async () => (await store.getJob(job.id))?.status === 'succeeded', 2_000);
        expect((await store.getJob(job.id))!.startedAt!).toBeGreaterThanOrEqual(job.runAt);
      });

      it('retries a transient failure with backoff and succeeds on a later attempt', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        const work = handler(({ ref }) => {
          if (ref.attempt < 3) throw new TransientError('destination_5xx', `HTTP 500 on attempt ${ref.attempt}`);
        });
        await scheduler(store, work).start();
        await waitFor(async () => (await store.getJob(job.id))?.status === 'succeeded');
        const events = (await store.listEvents(job.id));
        expect(events.map((event) => event.kind)).toEqual(['started', 'retrying', 'started', 'retrying', 'started', 'succeeded']);
        expect(events[1]?.error).toEqual({ code: 'destination_5xx', message: expect.stringMatching(/^HTTP 500 on attempt 1; attempt 1 of 3, retrying in \d+ ms$/) });
        // The backoff kept each retry at least RETRY_BASE_MS after the failure.
        expect(events[2]!.at - events[1]!.at).toBeGreaterThanOrEqual(10);
        expect((await store.getJob(job.id))?.attempts).toBe(3);
        expect(work.released).toEqual([job.id]);
      });

      it('fails at once on a permanent error, and after maxAttempts on transient ones', async () => {
        const { store } = await backend.open();
        const permanent = await insert(store);
        const transient = await insert(store, { maxAttempts: 2 });
        const work = handler(({ job }) => {
          throw job.id === permanent.id ? new PermanentError('image_corrupt', 'corrupt header') : new TransientError('network', 'reset');
        });
        await scheduler(store, work).start();
        await waitFor(async () => (await store.countByStatus()).failed === 2);
        expect((await store.getJob(permanent.id))).toMatchObject({ attempts: 1, lastError: { code: 'image_corrupt' } });
        expect((await store.getJob(transient.id))).toMatchObject({ attempts: 2, lastError: { code: 'network' } });
        expect(work.released.sort()).toEqual([permanent.id, transient.id].sort());
      });

      it('words a final failure without promising a retry, in the job and in its log line', async () => {
        const { store } = await backend.open();
        const job = await insert(store, { maxAttempts: 2 });
        const { log, lines } = recordingLog();
        scheduler(store, handler(() => {
          throw new TransientError('destination_unreachable', 'http://127.0.0.1:9/x could not be reached (ECONNREFUSED)');
        }), { log }).start();
        await waitFor(async () => (await store.getJob(job.id))?.status === 'failed');
        const final = 'http://127.0.0.1:9/x could not be reached (ECONNREFUSED); attempt 2 of 2, none left';
        expect((await store.getJob(job.id))?.lastError).toEqual({ code: 'destination_unreachable', message: final });
        await waitFor(() => attemptEnds(lines, job.id).length === 2);
        expect(attemptEnds(lines, job.id)).toEqual([
          { attempt: 1, outcome: 'retrying', msg: 'job retrying', err: expect.stringMatching(/; attempt 1 of 2, retrying in \d+ ms$/) },
          { attempt: 2, outcome: 'failed', msg: 'job failed', err: final },
        ]);
      });

      it('survives work that throws synchronously, rejects, throws a non-Error or never settles', async () => {
        const { store } = await backend.open();
        const kinds = ['sync', 'reject', 'string', 'undefined', 'hang', 'fine'] as const;
        const jobs = new Map<number, (typeof kinds)[number]>();
        for (const kind of kinds) jobs.set((await insert(store, { maxAttempts: 1, options: { kind } })).id, kind);
        const work: JobHandler = {
          perform(context: AttemptContext): Promise<void> {
            switch (context.job.options.kind) {
              case 'sync':
                throw new Error('thrown synchronously');
              case 'reject':
                return Promise.reject(new Error('rejected'));
              case 'string':
                return Promise.reject('a bare string');
              case 'undefined':
                return Promise.reject(undefined);
              case 'hang':
                return new Promise(() => undefined);
              default:
                return Promise.resolve();
            }
          },
          release: async () => undefined,
        };
        await scheduler(store, work, { jobTimeoutMs: 200 }).start();
        await waitFor(async () => {
          const counts = await store.countByStatus();
          return counts.queued + counts.running === 0;
        }, 5_000);
        const outcome = async (id: number) => {
          const job = await store.getJob(id);
          return job?.lastError?.code ?? job?.status;
        };
        const byKind = Object.fromEntries(await Promise.all([...jobs].map(async ([id, kind]) => [kind, await outcome(id)])));
        expect(byKind).toEqual({
          sync: 'internal_error',
          reject: 'internal_error',
          string: 'non_error_thrown',
          undefined: 'non_error_thrown',
          hang: 'attempt_timeout',
          fine: 'succeeded',
        });
      });

      it('aborts the attempt\'s signal on timeout so well-behaved work stops', async () => {
        const { store } = await backend.open();
        const job = await insert(store, { maxAttempts: 1 });
        let reason: unknown;
        const work = handler(({ signal }) => new Promise<void>((_, reject) => {
          signal.addEventListener('abort', () => {
            reason = signal.reason;
            reject(signal.reason as Error);
          });
        }));
        await scheduler(store, work, { jobTimeoutMs: 100 }).start();
        await waitFor(async () => (await store.getJob(job.id))?.status === 'failed');
        expect((reason as Error).message).toMatch(/did not finish within 100 ms/);
      });

      it('renews the lease while an attempt runs, and aborts the attempt once the lease is taken away', async () => {
        const { store, rows } = await backend.open();
        const job = await insert(store);
        let aborted = false;
        const work = handler(({ signal }) => new Promise<void>((_, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(signal.reason as Error);
          });
        }));
        await scheduler(store, work, { leaseMs: 300, heartbeatMs: 50 }).start();
        const first = await waitFor(async () => { const current = (await store.getJob(job.id)); return current?.status === 'running' ? current : null; });
        await delay(200);
        expect((await store.getJob(job.id))!.leaseExpiresAt!).toBeGreaterThan(first.leaseExpiresAt!);
        // Another process takes the job over (as if our lease had expired).
        await rows.leaseTakenBy(job.id, 'thief', Date.now() + 60_000);
        await waitFor(() => aborted, 2_000);
        await delay(50);
        expect((await store.getJob(job.id))).toMatchObject({ status: 'running', leaseOwner: 'thief', attempts: 1 });
        expect(work.released).toEqual([]);
      });

      it('frees the slot of an attempt that ends after the same job was claimed again here', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        let releaseFirst = (): void => {};
        const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
        const together: string[] = [];
        let bothRunning = (): void => {};
        const bothStarted = new Promise<void>((resolve) => (bothRunning = resolve));
        const work = handler(async ({ job: current, ref }) => {
          if (current.id === job.id && ref.attempt === 1) {
            await firstHeld; // deaf to aborts: ends, failing, only when released
            throw new Error('attempt 1 failed late');
          }
          if (current.id !== job.id) {
            together.push(String(current.id));
            if (together.length === 2) bothRunning();
            await bothStarted; // both extra jobs must run at once: needs both slots
          }
        });
        const s = scheduler(store, work, { maxConcurrentJobs: 2, leaseMs: 60_000, heartbeatMs: 60_000 });
        await s.start();
        await waitFor(async () => (await store.getJob(job.id))?.status === 'running');
        // The job is requeued as by an instance that took this one for dead; woken by the requeue, this one claims it again as attempt 2.
        expect(await store.requeueLost(Date.now(), [s.owner])).toBe(1);
        await waitFor(async () => (await store.getJob(job.id))?.status === 'succeeded');
        expect((await store.getJob(job.id))?.attempts).toBe(2);
        releaseFirst(); // attempt 1 fails now, superseded (its write is fenced off): its slot must come back
        await waitFor(() => s.running === 0);
        const [a, b] = [await insert(store), await insert(store)];
        await waitFor(async () => (await store.getJob(a.id))?.status === 'succeeded' && (await store.getJob(b.id))?.status === 'succeeded', 5_000);
      });

      it('lets in-flight attempts finish within the grace period on stop', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        const s = scheduler(store, handler(() => delay(100)));
        await s.start();
        await waitFor(() => s.running === 1);
        expect(await s.stop(2_000)).toEqual({ finished: 1, returned: 0 });
        expect((await store.getJob(job.id))?.status).toBe('succeeded');
      });

      it('keeps renewing the leases of attempts still running in the grace period, so no other instance takes their jobs', async () => {
        const fixture = await backend.open();
        const { store } = fixture;
        const other = await fixture.anotherInstance();
        const job = await insert(store);
        const s = scheduler(store, handler(() => delay(900)), { leaseMs: 300, heartbeatMs: 100 });
        await s.start();
        await waitFor(() => s.running === 1);
        const stopped = s.stop(3_000);
        // Another instance rescuing expired leases all through the grace period finds none to take.
        let rescued = 0;
        let done = false;
        void stopped.then(() => (done = true));
        while (!done) {
          rescued += await other.requeueLost(Date.now());
          await delay(50);
        }
        expect(await stopped).toEqual({ finished: 1, returned: 0 });
        expect(rescued).toBe(0);
        expect(await store.getJob(job.id)).toMatchObject({ status: 'succeeded', attempts: 1 });
      });

      it('hands a succeeding attempt\'s slot on at once, and waits on stop for the releases still running', async () => {
        const { store } = await backend.open();
        for (let i = 0; i < 4; i++) await insert(store);
        let openGate = (): void => {};
        const gate = new Promise<void>((resolve) => {
          openGate = resolve;
        });
        const released: number[] = [];
        const work: JobHandler = {
          perform: async () => {},
          release: async (job) => {
            await gate;
            released.push(job.id);
          },
        };
        const s = scheduler(store, work, { maxConcurrentJobs: 1 });
        await s.start();
        // One slot, and no release has finished: the jobs after the first ran in the slots their predecessors handed on.
        await waitFor(async () => (await store.countByStatus()).succeeded === 4);
        let stopped = false;
        const stopping = s.stop(0).then((result) => {
          stopped = true;
          return result;
        });
        await delay(20);
        expect(stopped).toBe(false);
        openGate();
        expect(await stopping).toEqual({ finished: 0, returned: 0 });
        expect(released).toHaveLength(4);
      });

      it('puts back attempts still running after the grace period without counting them', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        const other = await insert(store, { runAt: Date.now() + 60_000 });
        const s = scheduler(store, handler(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)))));
        await s.start();
        await waitFor(() => s.running === 1);
        expect(await s.stop(50)).toEqual({ finished: 0, returned: 1 });
        expect((await store.getJob(job.id))).toMatchObject({ status: 'queued', attempts: 0, leaseOwner: null, runAt: job.runAt });
        expect((await store.listEvents(job.id)).map((event) => event.kind)).toEqual(['started', 'returned']);
        expect((await store.getJob(other.id))?.status).toBe('queued');
      });

      it('requeues at start the jobs a dead local process left running, not those of a live or remote owner', async () => {
        const { store, rows } = await backend.open();
        const host = os.hostname();
        const dead = await rows.jobInState('running', { leaseOwner: `${host}:2147483646:dead` });
        const live = await rows.jobInState('running', { leaseOwner: `${host}:1:init` });
        const remote = await rows.jobInState('running', { leaseOwner: 'another-host:123:abcd' });
        const seen: number[] = [];
        await scheduler(store, handler(({ job }) => void seen.push(job.id))).start();
        await waitFor(async () => (await store.getJob(dead.id))?.status === 'succeeded');
        expect(seen).toEqual([dead.id]);
        expect((await store.getJob(dead.id))?.attempts).toBe(2);
        expect((await store.getJob(live.id))?.status).toBe('running');
        expect((await store.getJob(remote.id))?.status).toBe('running');
      });

      it('rescues jobs whose lease expired while it runs', async () => {
        const { store, rows } = await backend.open();
        const orphan = await rows.jobInState('running', { leaseOwner: 'another-host:1:x', leaseExpiresAt: Date.now() + 150 });
        await scheduler(store, handler(() => undefined), { heartbeatMs: 50 }).start();
        await waitFor(async () => (await store.getJob(orphan.id))?.status === 'succeeded', 3_000);
        expect((await store.listEvents(orphan.id)).map((event) => event.kind)).toEqual(['lost', 'started', 'succeeded']);
      });

      it('runs each job once when two schedulers share one database, each through a store of its own', async () => {
        const { store, anotherInstance } = await backend.open();
        const second = await anotherInstance();
        const runs = new Map<number, number>();
        const work = handler(async ({ job }) => {
          runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
          await delay(1);
        });
        for (let i = 0; i < 100; i++) await insert(store);
        await scheduler(store, work).start();
        await scheduler(second, work).start();
        await waitFor(async () => (await store.countByStatus()).succeeded === 100);
        expect(runs.size).toBe(100);
        expect([...runs.values()].every((count) => count === 1)).toBe(true);
      });

      it('stops a running attempt when its job is cancelled: aborts it, records nothing more, releases the job', async () => {
        const { store } = await backend.open();
        const job = await insert(store);
        let reason: unknown;
        const work = handler(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => {
          reason = signal.reason;
          reject(signal.reason as Error);
        })));
        const { log, lines } = recordingLog();
        const s = scheduler(store, work, { log });
        await s.start();
        await waitFor(() => s.running === 1);
        // The store's signal of the committed cancel reaches the scheduler, as a cancel on another instance would.
        expect(await store.cancelJob(job.id, Date.now())).toMatchObject({ cancelled: true, job: { status: 'cancelled' } });
        await waitFor(() => s.running === 0);
        expect((reason as Error).name).toBe('CancelAbort');
        // Its end is logged like any other: one line with the outcome.
        expect(attemptEnds(lines, job.id)).toEqual([{ attempt: 1, outcome: 'cancelled', msg: 'attempt cancelled', err: undefined }]);
        expect((await store.getJob(job.id))).toMatchObject({ status: 'cancelled', lastError: { code: 'cancelled' } });
        expect(work.released).toContain(job.id);
        expect(await store.cancelJob(job.id, Date.now())).toMatchObject({ cancelled: false });
      });

      it('writes an attempt\'s end once: a release that meets a full disk after the commit runs nothing of it again', async () => {
        const { store } = await backend.open();
        let failNextRelease = true;
        const performed: number[] = [];
        const first = await insert(store);
        const second = await insert(store);
        const third = await insert(store);
        const work: JobHandler = {
          perform: async ({ job }) => {
            performed.push(job.id);
            // The second runs past the first's retry of its end (a second later), holding the only slot.
            await delay(job.id === second.id ? 1_500 : 20);
          },
          release: async () => {
            if (!failNextRelease) return;
            failNextRelease = false;
            throw new DiskFullError(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
          },
        };
        const { log, lines } = recordingLog();
        await scheduler(store, work, { maxConcurrentJobs: 1, log }).start();
        await waitFor(async () => (await Promise.all([first, second, third].map((job) => store.getJob(job.id)))).every((found) => found?.status === 'succeeded'), 10_000, 10);
        // Each job ran once, in order, and no claim took a job without running it.
        expect(performed).toEqual([first.id, second.id, third.id]);
        expect((await store.listEvents(second.id)).map((event) => event.kind)).toEqual(['started', 'succeeded']);
        expect(attemptEnds(lines, first.id).map((end) => end.outcome)).toEqual(['succeeded']);
      });
  });
});
