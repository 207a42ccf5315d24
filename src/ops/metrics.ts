import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobWatch } from '../jobs/jobWatch.js';
import { jobStatuses } from '../jobs/states.js';
import type { JobStore } from '../jobs/store.js';
import type { AttemptEnd } from '../queue/scheduler.js';
import type { TempFiles, TempStore } from '../storage/tempStore.js';
import type { EventLoopDelay, RuntimeMonitor } from './runtimeMonitor.js';
import { sharpState } from './sharpState.js';
import type { SweepReport } from './sweeper.js';

/**
 * The service's Prometheus metrics, in a registry of its own (never the
 * global one, so several services can live in one process). Figures the
 * database or the runtime already hold are read at scrape time; events are
 * counted as they happen: attempt ends (the scheduler's `onAttemptEnd`) and
 * sweeps. Every series carries the answering instance's `instance_id`: the
 * queue's figures are the shared database's, the rest this process's own.
 */

export interface MetricsOptions {
  readonly store: JobStore;
  readonly tempStore: TempStore;
  readonly runtime: RuntimeMonitor;
  readonly jobWatch: JobWatch;
  /** Which instance answers a scrape (see `Scheduler.owner`). */
  readonly instanceId: string;
  readonly log: Logger;
}

const MIB = 1024 * 1024;
/** From a no-op job to the 30-minute attempt timeout. */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800];

/** The longest period a Node timer takes (about 24.8 days): a timer armed with it never fires in practice. */
const NEVER_MS = 2 ** 31 - 1;

/** prom-client's event-loop delay gauges, each with the runtime monitor's figure it now reports. */
const loopDelayGauges: readonly [string, keyof EventLoopDelay][] = [
  ['nodejs_eventloop_lag_min_seconds', 'minMs'],
  ['nodejs_eventloop_lag_max_seconds', 'maxMs'],
  ['nodejs_eventloop_lag_mean_seconds', 'meanMs'],
  ['nodejs_eventloop_lag_stddev_seconds', 'stddevMs'],
  ['nodejs_eventloop_lag_p50_seconds', 'p50Ms'],
  ['nodejs_eventloop_lag_p90_seconds', 'p90Ms'],
  ['nodejs_eventloop_lag_p99_seconds', 'p99Ms'],
];

/**
 * prom-client's default metrics sample event-loop delay every
 * `eventLoopMonitoringPrecision` ms for the life of the process (100 wake-ups
 * a second of an idle service at its default), and nothing stops that
 * sampler. So it is given a period it never reaches, and its gauges, under
 * their usual names, report the runtime monitor's figures instead: measured
 * only while requests or attempts are in flight, since start, as the delay
 * beyond its 20 ms sampling period.
 */
function registerLoopDelay(registry: Registry, runtime: RuntimeMonitor): void {
  for (const [name, field] of loopDelayGauges) {
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help: `Event-loop delay while requests or attempts were in flight, since start (${field.slice(0, -2)}), in seconds beyond the sampling period.`,
      registers: [registry],
      collect() {
        this.set(runtime.eventLoopDelay()[field] / 1000);
      },
    });
  }
}

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(options: MetricsOptions) {
  const { store, tempStore, runtime, jobWatch, log } = options;
  const registry = new Registry();
  registry.setDefaultLabels({ instance_id: options.instanceId });
  const registers = [registry];
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: NEVER_MS });
  registerLoopDelay(registry, runtime);

  new Gauge({
    name: 'image_jobs_jobs',
    help: 'Jobs in the database by status (terminal jobs until the sweeper prunes them).',
    labelNames: ['status'],
    registers,
    async collect() {
      const counts = await store.countByStatus();
      for (const status of jobStatuses) this.set({ status }, counts[status]);
    },
  });

  new Gauge({
    name: 'image_jobs_waiting_requests',
    help: 'GET /jobs/{id} requests held open by Prefer: wait until their job ends.',
    registers,
    collect() {
      this.set(jobWatch.size);
    },
  });

  new Gauge({
    name: 'image_jobs_queue_depth',
    help: 'Jobs queued or running: the figure MAX_QUEUED_JOBS bounds.',
    registers,
    async collect() {
      this.set(await store.liveCount());
    },
  });

  new Gauge({
    name: 'image_jobs_images',
    help: 'Images in the database: "pending" of queued or running jobs, "completed" of retained succeeded jobs.',
    labelNames: ['state'],
    registers,
    async collect() {
      const counts = await store.imageCounts();
      this.set({ state: 'pending' }, counts.pending);
      this.set({ state: 'completed' }, counts.completed);
    },
  });

  // A scrape collects every metric at once: both temp-store gauges share one listing.
  let listing: Promise<TempFiles[]> | null = null;
  const listTemp = (): Promise<TempFiles[]> => (listing ??= tempStore.list().finally(() => (listing = null)));
  new Gauge({
    name: 'image_jobs_temp_files',
    help: 'Files in the temp store (inputs of jobs not yet done, outputs being delivered).',
    registers,
    async collect() {
      this.set((await listTemp()).reduce((sum, files) => sum + files.names.length, 0));
    },
  });
  new Gauge({
    name: 'image_jobs_temp_bytes',
    help: 'Bytes of files in the temp store.',
    registers,
    async collect() {
      this.set((await listTemp()).reduce((sum, files) => sum + files.bytes, 0));
    },
  });

  const attempts = new Counter({
    name: 'image_jobs_attempts_total',
    help: 'Attempts ended, by outcome: succeeded, retrying, failed, returned (shutdown), cancelled, superseded (lost its job).',
    labelNames: ['outcome'],
    registers,
  });
  const attemptDuration = new Histogram({
    name: 'image_jobs_attempt_duration_seconds',
    help: 'Duration of one attempt, by outcome.',
    labelNames: ['outcome'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const jobDuration = new Histogram({
    name: 'image_jobs_job_duration_seconds',
    help: 'From submission to the end of the attempt that ended the job (retries and waits included), by final status.',
    labelNames: ['status'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const imagesProcessed = new Counter({
    name: 'image_jobs_images_processed_total',
    help: 'Images delivered by succeeded jobs.',
    registers,
  });
  const bytesIn = new Counter({
    name: 'image_jobs_image_input_bytes_total',
    help: 'Input bytes of the images of succeeded jobs.',
    registers,
  });
  const bytesOut = new Counter({
    name: 'image_jobs_image_output_bytes_total',
    help: 'Output bytes delivered by succeeded jobs.',
    registers,
  });

  const sweeps = new Counter({
    name: 'image_jobs_sweeps_total',
    help: 'Sweeper runs, by outcome: completed or failed.',
    labelNames: ['outcome'],
    registers,
  });
  const sweepRemoved = new Counter({
    name: 'image_jobs_sweep_removed_total',
    help: 'What the sweeper removed: pruned jobs, output folders of jobs no longer kept, unowned temp files.',
    labelNames: ['kind'],
    registers,
  });
  const sweepTempBytes = new Counter({
    name: 'image_jobs_sweep_temp_bytes_removed_total',
    help: 'Bytes of the unowned temp files the sweeper removed.',
    registers,
  });
  const sweepDuration = new Histogram({
    name: 'image_jobs_sweep_duration_seconds',
    help: 'Duration of completed sweeps.',
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers,
  });

  // Known label values start at zero so rate() sees the first event.
  for (const outcome of ['completed', 'failed']) sweeps.inc({ outcome }, 0);
  for (const kind of ['jobs', 'output_folders', 'temp_files']) sweepRemoved.inc({ kind }, 0);

  let allocatedReported = 0;
  new Counter({
    name: 'image_jobs_v8_heap_allocated_bytes_total',
    help: 'Bytes allocated on the V8 heap since the service started, derived from GC statistics.',
    registers,
    collect() {
      // A counter only goes up: add what was allocated since the last scrape.
      const allocated = runtime.heapAllocatedBytes();
      this.inc(Math.max(0, allocated - allocatedReported));
      allocatedReported = Math.max(allocated, allocatedReported);
    },
  });

  new Gauge({
    name: 'image_jobs_sharp_tasks',
    help: 'sharp tasks: "queued" waiting for a libuv worker thread, "processing" in libvips.',
    labelNames: ['state'],
    registers,
    collect() {
      const { counters } = sharpState();
      this.set({ state: 'queued' }, counters.queue);
      this.set({ state: 'processing' }, counters.process);
    },
  });

  new Gauge({
    name: 'image_jobs_libvips_memory_bytes',
    help: 'Memory libvips tracks (native, outside the V8 heap); 1 MiB resolution.',
    registers,
    collect() {
      this.set(sharpState().cache.memory.current * MIB);
    },
  });

  return {
    registry,

    /**
     * The scheduler's `onAttemptEnd`; resolves once a succeeded job's images
     * are counted. Never rejects: a metrics failure must not disturb the attempt's end.
     */
    async recordAttemptEnd(end: AttemptEnd): Promise<void> {
      try {
        attempts.inc({ outcome: end.outcome });
        attemptDuration.observe({ outcome: end.outcome }, end.durationMs / 1000);
        if (end.outcome === 'succeeded' || end.outcome === 'failed') {
          jobDuration.observe({ status: end.outcome }, Math.max(0, Date.now() - end.job.createdAt) / 1000);
        }
        if (end.outcome === 'succeeded') {
          const images = await store.listImages(end.job.id);
          imagesProcessed.inc(images.length);
          bytesIn.inc(images.reduce((sum, image) => sum + image.inputBytes, 0));
          bytesOut.inc(images.reduce((sum, image) => sum + (image.outputBytes ?? 0), 0));
        }
      } catch (error) {
        log.warn({ err: error, jobId: end.job.id }, 'could not record an attempt in the metrics');
      }
    },

    /** The sweeper's `onSweep`. */
    recordSweep(report: SweepReport): void {
      sweeps.inc({ outcome: 'completed' });
      sweepRemoved.inc({ kind: 'jobs' }, report.jobsPruned);
      sweepRemoved.inc({ kind: 'output_folders' }, report.outputFoldersRemoved);
      sweepRemoved.inc({ kind: 'temp_files' }, report.tempFilesRemoved);
      sweepTempBytes.inc(report.tempBytesRemoved);
      sweepDuration.observe(report.durationMs / 1000);
    },

    /** The sweeper's `onSweepFailed`. */
    recordSweepFailure(): void {
      sweeps.inc({ outcome: 'failed' });
    },
  };
}
