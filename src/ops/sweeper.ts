import fsp from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate } from 'node:timers/promises';
import cron, { type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { JobStore } from '../jobs/store.js';
import { DiskFullError } from '../storage/diskFull.js';
import type { TempStore } from '../storage/tempStore.js';

/**
 * The sweeper keeps the service's disk and database bounded: it prunes
 * terminal jobs (by age, then beyond MAX_COMPLETED_JOBS), deletes the local
 * results of jobs no longer in the database, deletes temp files no live job
 * owns, and truncates SQLite's WAL. `sweep(now)` is a plain function of the
 * clock; node-cron only calls it. Instances sharing a store sweep one at a
 * time (`JobStore.exclusively`): an instance whose tick finds another
 * sweeping skips it.
 */

/** What one sweep did. */
export interface SweepReport {
  /** The `now` the sweep ran with, epoch ms. */
  readonly at: number;
  /** True when another instance sharing the store was sweeping: this one did nothing. */
  readonly skipped: boolean;
  readonly durationMs: number;
  /** Terminal jobs deleted with their images and events. */
  readonly jobsPruned: number;
  /** `DATA_DIR/output/<jobId>/` folders of jobs no longer in the database. */
  readonly outputFoldersRemoved: number;
  /** Temp-store files no queued or running job owns, idle past the grace period. */
  readonly tempFilesRemoved: number;
  readonly tempBytesRemoved: number;
  /** Folders or temp files that could not be removed (logged; the next sweep tries again). */
  readonly removalFailures: number;
  /**
   * SQLite's WAL checkpoint: frames in the log, frames copied back, and 1 when a reader kept it busy (with -1
   * frames, as SQLite says, when it could not run: a full disk); null on PostgreSQL, or when the sweep was skipped.
   */
  readonly walCheckpoint: { readonly busy: number; readonly log: number; readonly checkpointed: number } | null;
}

export interface SweeperOptions {
  readonly config: Pick<Config, 'outputDir' | 'completedTtlMs' | 'maxCompletedJobs' | 'sweepCron'>;
  readonly store: JobStore;
  readonly tempStore: TempStore;
  readonly log: Logger;
  /** How long a key's unowned temp files must have been idle before they are deleted. */
  readonly tempGraceMs?: number;
  readonly onSweep?: (report: SweepReport) => void;
  readonly onSweepFailed?: (error: unknown) => void;
}

/**
 * A submission writes its temp files before the job row exists, and the
 * server gives a request at most 10 minutes: files idle for longer than
 * that cannot belong to an upload in progress, however slow.
 */
export const TEMP_GRACE_MS = 15 * 60_000;

/** Temp-store keys looked up in one query: one index probe each, a few milliseconds for the chunk. */
const KEY_CHUNK = 500;

/** Output folders are named by job id; anything else in the output store is not ours to judge. */
const JOB_FOLDER = /^[1-9]\d{0,15}$/;

export type Sweeper = ReturnType<typeof createSweeper>;

export function createSweeper(options: SweeperOptions) {
  const { config, store, tempStore, log } = options;
  const tempGraceMs = options.tempGraceMs ?? TEMP_GRACE_MS;
  let inFlight: Promise<SweepReport> | null = null;
  let lastRun: SweepReport | null = null;
  let task: ScheduledTask | null = null;

  /** Runs one removal; a failure is logged and counted, never fatal to the sweep. */
  async function tryRemove(remove: () => Promise<void>, what: string): Promise<boolean> {
    try {
      await remove();
      return true;
    } catch (error) {
      log.warn({ err: error, what }, 'sweeper could not remove something; the next sweep tries again');
      return false;
    }
  }

  /** Output folders whose job is gone: just pruned, or left by a crash between a prune and its cleanup. */
  async function orphanOutputFolders(): Promise<string[]> {
    const names = await fsp.readdir(config.outputDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    const ids = names.filter((name) => JOB_FOLDER.test(name)).map(Number);
    const known = await store.existingJobIds(ids);
    return ids.filter((id) => !known.has(id)).map(String);
  }

  /**
   * A database step that met a full disk is skipped, not fatal: the file
   * removals after it are what gives space back. The next sweep tries it again.
   */
  async function unlessDiskFull<T>(step: () => Promise<T>, skipped: T, what: string): Promise<T> {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof DiskFullError)) throw error;
      log.warn({ err: error, what }, 'sweeper step skipped: the disk is full; the next sweep tries again');
      return skipped;
    }
  }

  async function run(now: number): Promise<SweepReport> {
    const started = performance.now();
    const report = await store.exclusively('sweeper', () => sweepHere(now, started));
    if (report !== null) return report;
    log.info('another instance is sweeping: this sweep is skipped');
    return {
      at: now, skipped: true, durationMs: 0, jobsPruned: 0, outputFoldersRemoved: 0, tempFilesRemoved: 0, tempBytesRemoved: 0, removalFailures: 0,
      walCheckpoint: null,
    };
  }

  async function sweepHere(now: number, started: number): Promise<SweepReport> {
    // In batches, yielding between them: a sweep after a busy hour must not hold the event loop while it deletes.
    let jobsPruned = 0;
    for (;;) {
      const pruned = await unlessDiskFull(async () => (await store.pruneTerminal(now - config.completedTtlMs, config.maxCompletedJobs)).length, 0, 'prune');
      if (pruned === 0) break;
      jobsPruned += pruned;
      await setImmediate();
    }
    let removalFailures = 0;

    let outputFoldersRemoved = 0;
    for (const name of await orphanOutputFolders()) {
      const target = path.join(config.outputDir, name);
      if (await tryRemove(() => fsp.rm(target, { recursive: true, force: true }), target)) outputFoldersRemoved += 1;
      else removalFailures += 1;
    }

    // List before asking for the owners: a job committed in between is then seen as live. Only keys idle past
    // the grace period are asked about, KEY_CHUNK at a time, yielding between chunks: however many jobs wait,
    // no single step holds the event loop for long.
    const idle = (await tempStore.list()).filter((files) => now - files.mtimeMs >= tempGraceMs);
    let tempFilesRemoved = 0;
    let tempBytesRemoved = 0;
    for (let start = 0; start < idle.length; start += KEY_CHUNK) {
      const chunk = idle.slice(start, start + KEY_CHUNK);
      const live = await store.liveKeysAmong(chunk.map((files) => files.key));
      for (const files of chunk) {
        if (live.has(files.key)) continue;
        if (await tryRemove(() => tempStore.removeFiles(files), `temp files of ${files.key}`)) {
          tempFilesRemoved += files.names.length;
          tempBytesRemoved += files.bytes;
        } else {
          removalFailures += 1;
        }
      }
      await setImmediate();
    }

    const walCheckpoint = await unlessDiskFull(() => store.checkpoint(), { busy: 1, log: -1, checkpointed: -1 }, 'WAL checkpoint');
    return {
      at: now,
      skipped: false,
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      jobsPruned,
      outputFoldersRemoved,
      tempFilesRemoved,
      tempBytesRemoved,
      removalFailures,
      walCheckpoint,
    };
  }

  /**
   * Runs one sweep. It never overlaps itself: called while a sweep is in
   * progress, it answers with that sweep's report instead of starting another.
   */
  function sweep(now: number): Promise<SweepReport> {
    inFlight ??= run(now).then(
      (report) => {
        inFlight = null;
        lastRun = report;
        log.info(report, 'sweep done');
        options.onSweep?.(report);
        return report;
      },
      (error: unknown) => {
        inFlight = null;
        log.error({ err: error }, 'sweep failed');
        options.onSweepFailed?.(error);
        throw error;
      },
    );
    return inFlight;
  }

  function tick(): void {
    if (inFlight !== null) {
      log.info('previous sweep still running: this tick is skipped');
      return;
    }
    // sweep() has logged the failure; the next tick tries again.
    sweep(Date.now()).catch(() => undefined);
  }

  return {
    sweep,

    /** The last completed sweep, or null before the first. */
    get lastRun(): SweepReport | null {
      return lastRun;
    },

    /** Schedules sweeps on SWEEP_CRON. */
    start(): void {
      if (task !== null) return;
      task = cron.createTask(config.sweepCron, tick, { name: 'sweeper', logger: cronLogger(log) });
      void task.start();
    },

    /** Stops scheduling and waits for a sweep in progress, so the database can close after. */
    async stop(): Promise<void> {
      if (task !== null) await task.destroy();
      task = null;
      await inFlight?.catch(() => undefined);
    },
  };
}

/** node-cron's own messages (missed ticks) go to the service log, not the console. */
function cronLogger(log: Logger): CronLogger {
  return {
    info: (message) => log.info(message),
    warn: (message) => log.warn(message),
    error: (message, err) => log.error({ err: err ?? message }, 'node-cron error'),
    debug: (message) => log.debug({ detail: message }, 'node-cron'),
  };
}
