import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { JobWatch } from '../jobs/jobWatch.js';
import type { JobStore } from '../jobs/store.js';
import type { TempStore } from '../storage/tempStore.js';
import { createMemorySampler, type MemorySampler } from './memorySampler.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createRuntimeMonitor, type RuntimeMonitor } from './runtimeMonitor.js';
import { createSweeper, type Sweeper } from './sweeper.js';

/** The service's upkeep and self-observation: the sweeper, metrics, the memory sampler and the runtime monitor. */
export interface Operations {
  readonly runtime: RuntimeMonitor;
  readonly metrics: Metrics;
  readonly sweeper: Sweeper;
  readonly sampler: MemorySampler;
  /** Starts the monitors, the sampling timer and the sweeper's schedule. */
  start(): void;
  /** Stops them all and waits for a sweep in progress; call before closing the database. */
  stop(): Promise<void>;
}

export interface OperationsDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly store: JobStore;
  readonly tempStore: TempStore;
  readonly jobWatch: JobWatch;
  /** Which instance this is, in the metrics (see `Scheduler.owner`). */
  readonly instanceId: string;
}

export function createOperations({ config, log, store, tempStore, jobWatch, instanceId }: OperationsDeps): Operations {
  const runtime = createRuntimeMonitor();
  const metrics = createMetrics({ store, tempStore, runtime, jobWatch, instanceId, log });
  const sweeper = createSweeper({
    config,
    store,
    tempStore,
    log,
    onSweep: metrics.recordSweep,
    onSweepFailed: metrics.recordSweepFailure,
  });
  const sampler = createMemorySampler({ store, log });

  return {
    runtime,
    metrics,
    sweeper,
    sampler,

    start(): void {
      runtime.start();
      void sampler.start();
      sweeper.start();
    },

    async stop(): Promise<void> {
      sampler.stop();
      await sweeper.stop();
      runtime.stop();
    },
  };
}
