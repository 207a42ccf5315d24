import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import { groupCommit } from '../jobs/groupCommit.js';
import { isTerminal, JobStatus } from '../jobs/states.js';
import type { JobStore } from '../jobs/store.js';
import type { AttemptRef, DeliveredImage, Job, JobImage } from '../jobs/types.js';
import { logAttemptEnd, type RecordedFailure } from './attemptLog.js';
import { AttemptTimeoutError, classifyError } from './errors.js';
import { decideRetry, type RetrySettings } from './retryPolicy.js';
import { Semaphore } from './semaphore.js';

/** What a job's work receives for one attempt. */
export interface AttemptContext {
  readonly job: Job;
  /** The fence for every write the attempt makes. */
  readonly ref: AttemptRef;
  /** Fires on timeout, cancellation, lost lease or shutdown; the work must stop promptly. */
  readonly signal: AbortSignal;
  /** The job's images as stored now, delivered ones included. */
  images(): Promise<JobImage[]>;
  /** Records image `index` delivered, fenced by the attempt; false when the attempt no longer holds its job. */
  delivered(index: number, image: DeliveredImage): Promise<boolean>;
}

/** The work the scheduler runs, which it knows nothing else about. */
export interface JobHandler {
  /** Performs one attempt. Resolving means the job is done; throwing hands the error to the retry policy. */
  perform(context: AttemptContext): Promise<void>;
  /** Frees a job's resources once it has ended for good, given a way to read its images. Must be idempotent. */
  release(job: Job, images: () => Promise<JobImage[]>): Promise<void>;
}

export interface SchedulerOptions extends RetrySettings {
  readonly store: JobStore;
  readonly handler: JobHandler;
  readonly log: Logger;
  readonly maxConcurrentJobs: number;
  readonly jobTimeoutMs: number;
  /** How long a claim holds a job without a heartbeat. */
  readonly leaseMs?: number;
  /**
   * How often in-flight leases are renewed and expired ones rescued; while
   * no attempt of this process runs, three times less often (see `armHeartbeat`).
   */
  readonly heartbeatMs?: number;
  /** This instance's owner id (`newOwnerId`); a new one when not given. */
  readonly owner?: string;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Told of every attempt's end, after its outcome is written (metrics). */
  readonly onAttemptEnd?: (end: AttemptEnd) => void;
}

/**
 * How an attempt ended: the job's new state, `returned` (shutdown, not
 * counted), `cancelled`, or `superseded` when the attempt no longer held its
 * job (lease lost, or its writes were refused).
 */
export type AttemptOutcome = 'succeeded' | 'retrying' | 'failed' | 'returned' | 'cancelled' | 'superseded';

export interface AttemptEnd {
  readonly job: Job;
  readonly attempt: number;
  readonly outcome: AttemptOutcome;
  readonly errorCode: string | null;
  readonly durationMs: number;
}

/** Why an attempt was stopped from outside, when it was not the work's own doing. */
export class ShutdownAbort extends Error {
  constructor() {
    super('the service is shutting down');
    this.name = 'ShutdownAbort';
  }
}
export class CancelAbort extends Error {
  constructor() {
    super('the job was cancelled');
    this.name = 'CancelAbort';
  }
}
export class LeaseLostAbort extends Error {
  constructor() {
    super('the attempt lost its lease');
    this.name = 'LeaseLostAbort';
  }
}

/**
 * An attempt of this process, from its claim until its outcome is written (a
 * success, which hands its slot on at once) or until it settles (any other end).
 */
interface InFlight {
  readonly job: Job;
  readonly ref: AttemptRef;
  readonly controller: AbortController;
  /** Gives the attempt's slot back; safe to call more than once. */
  readonly freeSlot: () => void;
  /** Rejects the wait for the work with `reason`; set while the work runs. */
  stopWaiting: (reason: unknown) => void;
  /** Set when its success was written and its slot passed on (and the loop woken) then. */
  slotPassedOn: boolean;
}

export interface StopResult {
  /** Attempts that ended on their own within the grace period. */
  readonly finished: number;
  /** Attempts put back in the queue without counting. */
  readonly returned: number;
}

/** What an attempt's end wrote: its outcome, the failure recorded, and whether the job has ended. */
interface RecordedOutcome {
  readonly outcome: AttemptOutcome;
  readonly failure: RecordedFailure | null;
  readonly ended: boolean;
}

/** How often an attempt's outcome that met a full disk is written again. */
const RECORD_RETRY_MS = 1_000;

/** Owners made by this process: alive by definition. */
const ownersOfThisProcess = new Set<string>();

/** Owner ids read `host:pid:token`; the token tells two lives of one pid apart. */
export function newOwnerId(): string {
  const owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  ownersOfThisProcess.add(owner);
  return owner;
}

/**
 * True when `owner` names a process on this host that no longer runs (or an
 * earlier life of our own pid). Owners on other hosts are never presumed
 * dead: their jobs come back by lease expiry.
 */
export function isDeadLocalOwner(owner: string): boolean {
  const [host, pidText] = owner.split(':');
  if (host !== os.hostname() || ownersOfThisProcess.has(owner)) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  // Our own pid under another token: a previous life (containers reuse pid 1).
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export type Scheduler = ReturnType<typeof createScheduler>;

/**
 * Runs due jobs with at most `maxConcurrentJobs` attempts in flight. It claims
 * in one statement, sleeps until woken (a submission, a freed slot) or until
 * the next due `runAt`, and never busy-polls. Succeeding attempts refill their
 * own slots in the transaction that records them. No error escapes the loop.
 */
export function createScheduler(options: SchedulerOptions) {
  const { store, handler, log } = options;
  const leaseMs = options.leaseMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? Math.floor(leaseMs / 3);
  const owner = options.owner ?? newOwnerId();
  const now = options.now ?? Date.now;
  const slots = new Semaphore(options.maxConcurrentJobs);
  const inFlight = new Map<number, InFlight>();
  /** Every attempt until it has fully ended (outcome written, job released): what `stop` waits for. */
  const settling = new Set<Promise<void>>();

  let started = false;
  let stopping = false;
  let loopDone: Promise<void> = Promise.resolve();
  let wakePending = false;
  let wakeUp: (() => void) | null = null;
  /** While the loop sleeps: when it wakes by itself (epoch ms); Infinity when only a wake-up ends the sleep. */
  let wakesAt = Number.POSITIVE_INFINITY;
  /** While the loop sleeps: true when it waits for a free slot, which a finishing attempt signals. */
  let waitingForSlot = false;
  let heartbeatTimer: NodeJS.Timeout | null = null;
  /** When the armed heartbeat fires (epoch ms, real time whatever `now` says). */
  let heartbeatAt = Number.POSITIVE_INFINITY;

  // Work made due and cancels committed by any instance sharing the store, this one's included.
  store.onSignal((signal) => {
    if (signal.kind === 'due') notify(signal.runAt);
    else if (signal.status === JobStatus.cancelled) cancelled(signal.jobIds);
  });

  /**
   * Told that a job was inserted or made due at `runAt`. Wakes the loop
   * unless it will look in time by itself: it sleeps until a time no later
   * than `runAt`, or until a slot frees (it claims whatever is due then).
   */
  function notify(runAt: number): void {
    if (wakeUp !== null && (waitingForSlot || wakesAt <= runAt)) return;
    wake();
  }

  /**
   * Told that jobs were cancelled: an attempt of this process still running
   * one of them stops at once (the cancel has committed, so its fenced writes
   * could change nothing).
   */
  function cancelled(jobIds: readonly number[]): void {
    for (const jobId of jobIds) {
      const local = inFlight.get(jobId);
      if (local) abortAttempt(local, new CancelAbort());
    }
  }

  function wake(): void {
    wakePending = true;
    wakeUp?.();
  }

  /** Sleeps until woken, or until `until` (epoch ms) when given. */
  async function sleep(until: number | null, forSlot = false): Promise<void> {
    if (wakePending || stopping) {
      wakePending = false;
      return;
    }
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      wakesAt = until ?? Number.POSITIVE_INFINITY;
      waitingForSlot = forSlot;
      wakeUp = () => {
        if (timer) clearTimeout(timer);
        wakeUp = null;
        resolve();
      };
      // setTimeout's limit is about 24.8 days; a later job just wakes us earlier.
      if (until !== null) timer = setTimeout(() => wakeUp?.(), Math.min(Math.max(0, until - now()), 2 ** 31 - 1));
    });
    wakePending = false;
  }

  async function loop(): Promise<void> {
    /** The code of the error the loop is backing off from, if any: a fault that lasts (a full disk) is logged once, not every second. */
    let failing: string | null = null;
    while (!stopping) {
      try {
        const reserved = freeSlots();
        if (reserved.length === 0) {
          await sleep(null, true); // a finishing attempt wakes us
          continue;
        }
        const claimed = await claimInto(reserved);
        if (failing !== null) log.info({ code: failing }, 'scheduler loop recovered');
        failing = null;
        if (claimed === reserved.length) continue;
        await sleep(await store.nextRunAt());
      } catch (error) {
        // A busy or failing database must not end the loop: log, back off, go on.
        const { code } = classifyError(error);
        if (code !== failing) log.error({ err: error }, 'scheduler loop error; trying again every second until it clears');
        failing = code;
        await sleep(now() + 1_000);
      }
    }
  }

  /** Every slot free now, taken: a claim reserves the slots of the jobs it may get before it asks, so two claims in flight never share one. */
  function freeSlots(): (() => void)[] {
    const taken: (() => void)[] = [];
    for (let slot = slots.tryAcquire(); slot !== null; slot = slots.tryAcquire()) taken.push(slot);
    return taken;
  }

  /** Starts each of `jobs` in one of `reserved` (there are at least as many), and gives the other slots back. */
  function startIn(jobs: readonly Job[], reserved: readonly (() => void)[]): void {
    jobs.forEach((job, i) => start(job, reserved[i] as () => void));
    for (const slot of reserved.slice(jobs.length)) slot();
  }

  /** Claims as many due jobs as `reserved` holds slots; the slots go back if the claim fails. */
  async function claimInto(reserved: readonly (() => void)[]): Promise<number> {
    let claimed: Job[];
    try {
      claimed = await store.claimDue(owner, now(), leaseMs, reserved.length);
    } catch (error) {
      startIn([], reserved);
      throw error;
    }
    startIn(claimed, reserved);
    return claimed.length;
  }

  function start(job: Job, freeSlot: () => void): void {
    const ref: AttemptRef = { jobId: job.id, owner, attempt: job.attempts };
    const attempt: InFlight = { job, ref, controller: new AbortController(), freeSlot, stopWaiting: () => {}, slotPassedOn: false };
    inFlight.set(job.id, attempt);
    if (heartbeatAt > Date.now() + heartbeatMs) armHeartbeat();
    const settled = runAttempt(attempt).finally(() => {
      settling.delete(settled);
      // Not if a later attempt of the job, claimed here after this one lost its lease, took the entry.
      if (inFlight.get(job.id) === attempt) inFlight.delete(job.id);
      if (attempt.slotPassedOn) return;
      freeSlot();
      wake();
    });
    settling.add(settled);
  }

  /**
   * Aborts the attempt's signal and stops waiting for its work at once. Every
   * abort goes through here, so no listener is registered on the signal per attempt.
   */
  function abortAttempt(attempt: InFlight, reason: Error): void {
    attempt.controller.abort(reason);
    attempt.stopWaiting(reason);
  }

  async function runAttempt(attempt: InFlight): Promise<void> {
    const { job, ref, controller } = attempt;
    const { signal } = controller;
    const images = (): Promise<JobImage[]> => store.listImages(job.id);
    const delivered = (index: number, image: DeliveredImage): Promise<boolean> => store.recordDelivered(ref, index, image, now());
    const timer = setTimeout(() => abortAttempt(attempt, new AttemptTimeoutError(options.jobTimeoutMs)), options.jobTimeoutMs);
    const startedAt = now();
    log.info({ jobId: job.id, attempt: ref.attempt }, 'attempt started');
    let thrown: unknown = null;
    let ok = false;
    try {
      await new Promise<void>((resolve, reject) => {
        attempt.stopWaiting = reject;
        // `then` turns a synchronous throw of the work into a rejection.
        Promise.resolve().then(() => handler.perform({ job, ref, signal, images, delivered })).then(resolve, reject);
      });
      ok = true;
    } catch (error) {
      thrown = signal.aborted ? signal.reason : error;
    } finally {
      clearTimeout(timer);
    }
    const durationMs = now() - startedAt;
    let recorded: RecordedOutcome | undefined;
    for (let tries = 1; recorded === undefined; tries += 1) {
      try {
        recorded = await recordOutcome(attempt, ok, thrown);
      } catch (error) {
        // An outcome that could not be written for want of disk is written once there is room: the
        // attempt keeps its slot and, through the heartbeat, its lease, so no one else takes the job
        // meanwhile. At shutdown it is left to lease expiry, as after a crash. Only the write is
        // tried again: once it has committed, nothing of it may run twice.
        if (!classifyError(error).outlastsAttempts || stopping) {
          log.error({ err: error, jobId: job.id }, 'could not record the end of an attempt');
          return;
        }
        if (tries === 1) log.warn({ err: error, jobId: job.id, attempt: ref.attempt }, `could not record the end of an attempt; trying again every ${RECORD_RETRY_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, RECORD_RETRY_MS));
      }
    }
    const { outcome, failure, ended } = recorded;
    logAttemptEnd(log, { jobId: job.id, attempt: ref.attempt, outcome, durationMs }, failure);
    options.onAttemptEnd?.({ job, attempt: ref.attempt, outcome, errorCode: failure?.code ?? null, durationMs });
    try {
      // Whatever this attempt could or could not write, a job that has ended
      // (here, by a cancel, or elsewhere) gives its files back.
      const current = ended ? null : await store.getJob(job.id);
      if (ended || (current !== null && isTerminal(current.status))) await handler.release(current ?? job, images);
    } catch (error) {
      log.error({ err: error, jobId: job.id }, 'could not release an ended job\'s files; the sweeper will');
    }
  }

  /** Writes how an attempt ended, guarded by its fence; the one step of an attempt's end that may be tried again. */
  async function recordOutcome(attempt: InFlight, ok: boolean, thrown: unknown): Promise<RecordedOutcome> {
    const { job, ref } = attempt;
    const at = now();
    if (ok) {
      const ended = await completeAttempt(attempt);
      return { outcome: ended ? 'succeeded' : 'superseded', failure: null, ended };
    }
    if (thrown instanceof ShutdownAbort) return { outcome: (await store.returnAttempt(ref, at)) ? 'returned' : 'superseded', failure: null, ended: false };
    if (thrown instanceof CancelAbort) return { outcome: 'cancelled', failure: null, ended: false };
    if (thrown instanceof LeaseLostAbort) return { outcome: 'superseded', failure: null, ended: false };
    const classified = classifyError(thrown);
    const { retryAt, message } = decideRetry(classified, job, at, options, options.random);
    const written = await store.failAttempt(ref, { code: classified.code, message }, retryAt, at);
    if (written === null) return { outcome: 'superseded', failure: null, ended: false };
    return { outcome: written, failure: { code: classified.code, message, retryAt }, ended: written === 'failed' };
  }

  /**
   * Attempts that succeed in the same turn of the event loop are written in
   * one transaction, which also claims due jobs for the slots they free:
   * under load, one commit per batch of jobs instead of one per attempt end
   * plus one per claim. Their slots pass to the claimed jobs at once; the
   * finished attempts' remaining steps (metrics, release) run outside them.
   */
  const completeAttempt = groupCommit(async (attempts: readonly InFlight[]): Promise<readonly boolean[]> => {
    // Free slots besides the finished attempts' own, reserved for the jobs this may claim.
    const extra = stopping ? [] : freeSlots();
    const refs = attempts.map((attempt) => attempt.ref);
    let written;
    try {
      written = await store.completeAndClaimDue(refs, now(), owner, leaseMs, stopping ? 0 : attempts.length + extra.length);
    } catch (error) {
      startIn([], extra);
      throw error; // the attempts keep their slots while their outcome is tried again
    }
    for (const attempt of attempts) {
      if (inFlight.get(attempt.job.id) === attempt) inFlight.delete(attempt.job.id);
      attempt.slotPassedOn = true;
    }
    startIn(written.claimed, [...attempts.map((attempt) => attempt.freeSlot), ...extra]);
    // Slots left over mean nothing more is due now: the loop plans its next look (a timer, or a
    // wake by the next submission) at once, not after these attempts' releases.
    if (written.claimed.length < attempts.length) wake();
    return written.completed;
  });

  /** Each step on its own: a heartbeat that cannot be written (a full disk) must not stop the rescue of lost jobs. */
  async function renewLeases(): Promise<void> {
    const at = now();
    try {
      for (const attempt of [...inFlight.values()]) {
        if (!(await store.heartbeat(attempt.ref, at, leaseMs))) abortAttempt(attempt, new LeaseLostAbort());
      }
    } catch (error) {
      // The leases stand until they expire; the next heartbeat tries again.
      log.error({ err: error }, 'lease renewal failed');
    }
    try {
      if ((await store.requeueLost(at)) > 0) wake();
    } catch (error) {
      log.error({ err: error }, 'requeueing lost jobs failed; the next heartbeat tries again');
    }
    armHeartbeat();
  }

  /**
   * Arms the next heartbeat: in `heartbeatMs` while attempts of this process
   * run (their leases need it), in `3 × heartbeatMs` (the lease, by default)
   * while none does. An idle heartbeat only rescues the expired leases of
   * other processes sharing the database, which may wait that long; and an
   * idle service is not woken more often than it must be. An attempt that
   * starts brings the next heartbeat forward (`start`).
   */
  function armHeartbeat(): void {
    if (heartbeatTimer) clearTimeout(heartbeatTimer);
    heartbeatTimer = null;
    heartbeatAt = Number.POSITIVE_INFINITY;
    // Stopping, leases are renewed while attempts still run in the grace period: another instance must not take their jobs.
    if (stopping && inFlight.size === 0) return;
    const period = inFlight.size > 0 ? heartbeatMs : 3 * heartbeatMs;
    heartbeatAt = Date.now() + period;
    heartbeatTimer = setTimeout(() => void renewLeases(), period);
    heartbeatTimer.unref();
  }

  return {
    owner,

    /** Attempts of this process that have not fully ended: work running, or an outcome or release still being written. */
    get running(): number {
      return settling.size;
    },

    /** Requeues what dead local processes left running, then starts claiming. */
    async start(): Promise<void> {
      if (started) return;
      started = true;
      const dead = (await store.runningOwners()).filter(isDeadLocalOwner);
      const recovered = await store.requeueLost(now(), dead);
      if (recovered > 0) log.warn({ recovered }, 'requeued jobs left running by a stopped process');
      armHeartbeat();
      loopDone = loop();
    },

    /** Wakes the loop for a job made due at `runAt` by a write no signal told of (see `notify`). */
    notify,

    /** Frees an ended job's resources (its input files), as an attempt's end would. */
    release(job: Job): Promise<void> {
      return handler.release(job, () => store.listImages(job.id));
    },

    /**
     * Stops claiming, lets attempts in flight finish within `graceMs`, then
     * aborts the rest and puts their jobs back without counting the attempt.
     */
    async stop(graceMs: number): Promise<StopResult> {
      stopping = true;
      wake();
      await loopDone;
      const before = inFlight.size;
      let graceTimer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.all(settling), graceOver]);
      clearTimeout(graceTimer);
      const left = inFlight.size;
      // A completion written as the grace ran out may have claimed jobs since: each is put back too.
      let returned = 0;
      while (settling.size > 0) {
        const running = [...inFlight.values()];
        returned += running.length;
        for (const attempt of running) abortAttempt(attempt, new ShutdownAbort());
        await Promise.all(settling);
      }
      if (heartbeatTimer) clearTimeout(heartbeatTimer);
      return { finished: before - left, returned };
    },
  };
}
