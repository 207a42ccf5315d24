import type { JobStore } from '../jobs/store.js';
import type { TempStore } from '../storage/tempStore.js';
import type { RuntimeMonitor } from './runtimeMonitor.js';
import { sharpState } from './sharpState.js';
import type { SweepReport } from './sweeper.js';

/**
 * The body of `GET /debug/memory-stats`. `memory_stats` keeps the original
 * service's field names for the dashboards that read them, each mapped onto
 * what Node can honestly measure; `node` carries Node's own figures.
 */

export interface MemoryStatsSources {
  readonly store: JobStore;
  readonly tempStore: TempStore;
  readonly runtime: RuntimeMonitor;
  /** The scheduler's attempts running here, and its owner id: which instance this is. */
  readonly scheduler: { readonly running: number; readonly owner: string };
  readonly sweeper: { readonly lastRun: SweepReport | null };
}

const MIB = 1024 * 1024;
const mb = (bytes: number): number => Math.round((bytes / MIB) * 100) / 100;
/** RFC 3339 to the second, as the original service wrote it. */
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A sweep report the way the debug routes show it. */
export function sweepView(report: SweepReport) {
  return {
    at: new Date(report.at).toISOString(),
    duration_ms: report.durationMs,
    jobs_pruned: report.jobsPruned,
    output_folders_removed: report.outputFoldersRemoved,
    temp_files_removed: report.tempFilesRemoved,
    temp_bytes_removed: report.tempBytesRemoved,
    removal_failures: report.removalFailures,
    skipped: report.skipped,
    wal_checkpoint: report.walCheckpoint === null ? null : {
      log_frames: report.walCheckpoint.log,
      checkpointed_frames: report.walCheckpoint.checkpointed,
      busy: report.walCheckpoint.busy === 1,
    },
  };
}

export async function memoryStats(sources: MemoryStatsSources, now = Date.now()) {
  const { store, tempStore, runtime, scheduler, sweeper } = sources;
  const temp = await tempStore.list();
  const usage = process.memoryUsage();
  const images = await store.imageCounts();
  const sharp = sharpState();
  const loopDelay = runtime.eventLoopDelay();

  return {
    instance_id: scheduler.owner,
    memory_stats: {
      /** V8 heap in use. */
      alloc_mb: mb(usage.heapUsed),
      /** Bytes allocated on the V8 heap since the service started, from GC statistics. */
      total_alloc_mb: mb(runtime.heapAllocatedBytes()),
      /** Resident set size: everything the process holds in RAM, native memory included. */
      sys_mb: mb(usage.rss),
      num_gc: runtime.gcCount(),
      /** Images of queued or running jobs. */
      pending_images: images.pending,
      /** Images of retained succeeded jobs. */
      completed_images: images.completed,
      /** Active libuv handles and requests, plus attempts running in this process. */
      num_goroutines: process.getActiveResourcesInfo().length + scheduler.running,
      timestamp: rfc3339(now),
    },
    node: {
      rss_bytes: usage.rss,
      heap_total_bytes: usage.heapTotal,
      heap_used_bytes: usage.heapUsed,
      external_bytes: usage.external,
      array_buffers_bytes: usage.arrayBuffers,
      sharp: {
        libvips_memory_mb: sharp.cache.memory,
        cache_files: sharp.cache.files,
        cache_items: sharp.cache.items,
        queued_tasks: sharp.counters.queue,
        processing_tasks: sharp.counters.process,
        concurrency: sharp.concurrency,
      },
      temp_files: {
        /** Jobs (keys) with files in the store. */
        jobs: temp.length,
        files: temp.reduce((sum, files) => sum + files.names.length, 0),
        bytes: temp.reduce((sum, files) => sum + files.bytes, 0),
      },
      running_jobs: scheduler.running,
      event_loop_delay_ms: {
        mean: loopDelay.meanMs,
        p50: loopDelay.p50Ms,
        p90: loopDelay.p90Ms,
        p99: loopDelay.p99Ms,
        max: loopDelay.maxMs,
      },
      uptime_s: Math.round(process.uptime()),
      last_sweep: sweeper.lastRun === null ? null : sweepView(sweeper.lastRun),
    },
  };
}
