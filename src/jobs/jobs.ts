import type { Config } from '../config.js';
import { createScheduler, type SchedulerOptions } from '../queue/scheduler.js';
import { confirmDurable } from '../storage/diskFull.js';
import type { DiskSpace } from '../storage/diskSpace.js';
import type { TempStore } from '../storage/tempStore.js';
import { groupCommit } from './groupCommit.js';
import { createJobWatch } from './jobWatch.js';
import { isTerminal } from './states.js';
import type { JobSignal } from './store.js';
import { confirmStored, createSubmitter } from './submitJob.js';
import type { Job, NewJob, StoredJob } from './types.js';

export type Jobs = ReturnType<typeof createJobs>;

/** What a cancel found: null for an unknown job; `cancelled` false when the job had already ended. */
export type CancelOutcome = { readonly job: Job; readonly cancelled: boolean } | null;

/**
 * The jobs core: the verbs that change jobs on a client's behalf, each doing
 * its own follow-ups, and the scheduler that runs them. It knows no
 * transport: callers pass plain values and get jobs back.
 *
 * - A write a client is told about resolves only once it is durable (group
 *   commit: the submissions of one event-loop turn share a transaction, and
 *   one WAL fsync on SQLite).
 * - Every committed change reaches whoever must hear of it through the
 *   store's signals, from this instance or another sharing the store: a job
 *   made due wakes the scheduler, a cancel stops the attempt running it (the
 *   scheduler listens for both), an ended job wakes the requests waiting for it.
 */
export interface JobsOptions extends SchedulerOptions {
  readonly config: Config;
  readonly tempStore: TempStore;
  readonly disk: DiskSpace;
}

export function createJobs(options: JobsOptions) {
  const { store } = options;
  const watch = createJobWatch();
  const scheduler = createScheduler(options);
  const insert = groupCommit((jobs: readonly NewJob[]) => store.insertJobs(jobs, Date.now()));
  const stopping = new AbortController();

  /**
   * Stores a queued job, or finds the job stored earlier under its
   * idempotency key (`created: false`). Resolves once the job is durable:
   * a repeat's first job may have committed a moment ago, its own answer
   * still pending.
   */
  async function add(job: NewJob): Promise<StoredJob> {
    const stored = await insert(job);
    await confirmStored(store, stored);
    return stored;
  }

  // Requests waiting for a job hear of its end, whichever instance sharing the store ended it.
  store.onSignal((signal: JobSignal) => {
    if (signal.kind === 'ended') for (const jobId of signal.jobIds) watch.changed(jobId);
  });

  return {
    store,
    scheduler,
    /** Requests waiting for a job to change (`waitForEnd`), for the metrics. */
    watch,
    /** Aborted once `stop` has begun: new work is refused, waits answer. */
    stopping: stopping.signal,

    /**
     * A submission, from its body to a durable job (see `createSubmitter`);
     * refusals are `JobRefusedError`s.
     */
    submit: createSubmitter({ config: options.config, store, add, stopping: stopping.signal, tempStore: options.tempStore, disk: options.disk }),

    /**
     * Cancels a queued or running job. The attempt running it, here or on
     * another instance, is stopped by the store's signal; its input files go
     * once the cancel is durable (the sweeper takes them if this process dies first).
     */
    async cancel(jobId: number): Promise<CancelOutcome> {
      const result = await store.cancelJob(jobId, Date.now());
      if (result === null) return null;
      if (!result.cancelled) {
        await store.makeDurable(); // the end it found may be a moment old
        return { job: result.job, cancelled: false };
      }
      await confirmDurable(store.makeDurable(), `Job ${jobId} was cancelled`);
      // The cancel stands whatever happens to its files now: one that cannot be removed is the sweeper's.
      await scheduler.release(result.job).catch((error: unknown) => options.log.warn({ err: error, jobId }, 'could not release a cancelled job\'s files; the sweeper will'));
      return { job: result.job, cancelled: true };
    },

    /**
     * Makes a queued job due now. Resolves to the job as it is then; a job
     * that is not queued (running, ended, or gone meanwhile) is returned as
     * found, unchanged, or null when there is no such job.
     */
    async runNow(jobId: number): Promise<Job | null> {
      return (await store.runNow(jobId, Date.now())) ?? store.getJob(jobId);
    },

    /**
     * Resolves to the job once it has ended, `ms` have passed or `signal`
     * aborts, or shutdown begins, whichever comes first; null when there is no such job. Ends
     * committed by any instance sharing the store wake it; it also reads the
     * job again every `recheckMs`, in case a signal was missed.
     */
    async waitForEnd(jobId: number, ms: number, clientGone: AbortSignal, recheckMs: number): Promise<Job | null> {
      const until = Date.now() + ms;
      // One controller per wait, its listeners removed at the end (AbortSignal.any on the process-long
      // `stopping` would keep an entry for every wait ever made).
      const gone = new AbortController();
      const end = (): void => gone.abort();
      for (const signal of [clientGone, stopping.signal]) signal.addEventListener('abort', end, { once: true });
      if (clientGone.aborted || stopping.signal.aborted) end();
      try {
        for (;;) {
          // Listening before reading: an end committed between the read and the wait still wakes it.
          const read = new AbortController();
          const stopWaiting = (): void => read.abort();
          gone.signal.addEventListener('abort', stopWaiting, { once: true });
          if (gone.signal.aborted) stopWaiting();
          const woken = watch.wait(jobId, Math.max(0, Math.min(until - Date.now(), recheckMs)), read.signal);
          try {
            const job = await store.getJob(jobId);
            if (job === null || isTerminal(job.status) || gone.signal.aborted || Date.now() >= until) return job;
            await woken;
          } finally {
            read.abort();
            gone.signal.removeEventListener('abort', stopWaiting);
            await woken;
          }
        }
      } finally {
        for (const signal of [clientGone, stopping.signal]) signal.removeEventListener('abort', end);
      }
    },

    /**
     * Refuses new work and answers waiting requests at once, then stops the
     * scheduler: attempts in flight may finish within `graceMs`, the rest go
     * back to the queue uncounted.
     */
    stop(graceMs: number): ReturnType<typeof scheduler.stop> {
      stopping.abort();
      return scheduler.stop(graceMs);
    },
  };
}
