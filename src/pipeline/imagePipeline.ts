import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ImageStatus } from '../jobs/states.js';
import type { Job, JobImage } from '../jobs/types.js';
import { createDestinations } from '../destination/index.js';
import { createConverter } from '../image/convert.js';
import { outputFormatInfo } from '../image/outputFormat.js';
import { configureSharp } from '../image/sharpSettings.js';
import { TransientError } from '../queue/errors.js';
import type { AttemptContext, JobHandler } from '../queue/scheduler.js';
import type { Semaphore } from '../queue/semaphore.js';
import { untilAborted } from '../queue/untilAborted.js';
import { removeFile } from '../storage/fsCalls.js';
import type { TempStore } from '../storage/tempStore.js';
import { readJobSpec, type JobSpec } from './jobSpec.js';

export interface ImagePipelineDeps {
  readonly config: Config;
  readonly tempStore: TempStore;
  readonly log: Logger;
  /** The one semaphore bounding conversions in flight across all jobs; created once by the caller. */
  readonly conversions: Semaphore;
}

/** One attempt's fixed facts, handed to each image. */
interface AttemptScope {
  readonly attempt: AttemptContext;
  readonly spec: JobSpec;
  /** Epoch ms when the attempt's time runs out. */
  readonly deadline: number;
}

/**
 * What stops an image. A sibling's failure stops the batch's other images
 * from starting a conversion once it is known, and those converting after
 * their conversion ends (see `processBatch`); the attempt's end (timeout,
 * cancel, shutdown) stops them at once, abandoning libvips' work.
 */
interface ImageSignals {
  readonly attempt: AbortSignal;
  /** The attempt's or the batch's. */
  readonly any: AbortSignal;
}

/**
 * The scheduler's work for image jobs: each attempt converts the images not
 * yet delivered, batch by batch (IMAGE_BATCH_SIZE at a time), and sends each
 * to its destination. An image's temp files go as soon as it is delivered and
 * recorded; a retry starts from the images still pending, whose inputs are
 * kept until the job ends (then `release` removes them).
 */
export function createImagePipeline(deps: ImagePipelineDeps): JobHandler {
  const { config, tempStore, log } = deps;
  log.info({ sharp: configureSharp(), convertConcurrency: deps.conversions.limit }, 'image pipeline ready');
  const converter = createConverter({
    webpQuality: config.webpQuality,
    webpEffort: config.webpEffort,
    maxInputPixels: config.maxInputPixels,
    conversions: deps.conversions,
  });
  const destinations = createDestinations({ outputDir: config.outputDir, uploadAllowedHosts: config.uploadAllowedHosts, log });

  /** Converts, delivers and records one image, then frees its temp files. */
  async function processImage(scope: AttemptScope, image: JobImage, signals: ImageSignals): Promise<void> {
    const { attempt, spec } = scope;
    const { job, ref } = attempt;
    const { index } = image;
    const input = tempStore.inputPath(spec.inputKey, index);
    const output = tempStore.outputPath(spec.inputKey, index, outputFormatInfo[spec.options.format].extension);
    // A missing input fails the conversion as permanent input_missing (see conversionFailure).
    try {
      const startedAt = Date.now();
      const converted = await converter.convert({
        input,
        header: { format: image.inputFormat, width: image.width, height: image.height, pages: image.pages },
        output, index, options: spec.options, signal: signals.attempt, queueSignal: signals.any, deadline: scope.deadline,
      });
      const signal = signals.any;
      signal.throwIfAborted();
      log.debug(
        { jobId: job.id, index, format: converted.format, width: converted.width, height: converted.height, pages: converted.pages,
          bytes: converted.bytes, scaledToFit: converted.scaledToFit, ms: Date.now() - startedAt },
        'image converted',
      );
      const location = await destinations.deliver(spec.destination, { jobId: job.id, index, file: output, format: converted.format, signal });
      const delivered = {
        outputFormat: converted.format, outputWidth: converted.width, outputHeight: converted.height,
        outputBytes: converted.bytes, scaledToFit: converted.scaledToFit, location,
      };
      if (!(await attempt.delivered(index, delivered))) {
        // The guarded write found another owner (cancelled, lease lost): nothing more is ours to do.
        throw new TransientError('attempt_superseded', `job ${job.id} is no longer held by attempt ${ref.attempt}; stopping`);
      }
      await removeFile(input);
    } finally {
      await removeFile(output);
    }
  }

  /**
   * Per job, its latest batch until every image of it has settled. A
   * sibling's failure ends the attempt at once, so the failure is recorded as
   * it is, but images already in libvips convert to their end and remove their
   * own output: the job's release and its next attempt wait for them, so no
   * conversion of a job outlives its files or writes the output its retry writes.
   */
  const settling = new Map<number, Promise<unknown>>();

  /**
   * Runs one batch side by side. The first failure stops the batch's other
   * images (see `ImageSignals`) and is thrown at once.
   */
  async function processBatch(scope: AttemptScope, batch: readonly JobImage[], attemptSignal: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const signals: ImageSignals = { attempt: attemptSignal, any: AbortSignal.any([attemptSignal, stop.signal]) };
    // Never rejects. Aborting an aborted controller changes nothing: its reason stays the first failure.
    const images = Promise.all(batch.map((image) => processImage(scope, image, signals).catch((error: unknown) => stop.abort(error))));
    const jobId = scope.attempt.job.id;
    settling.set(jobId, images);
    void images.then(() => {
      if (settling.get(jobId) === images) settling.delete(jobId);
    });
    await untilAborted(images, stop.signal);
    attemptSignal.throwIfAborted();
  }

  return {
    async perform(attempt: AttemptContext): Promise<void> {
      const { job, signal } = attempt;
      await settling.get(job.id);
      const deadline = Date.now() + config.jobTimeoutMs;
      const pending = (await attempt.images()).filter((image) => image.status !== ImageStatus.delivered);
      if (pending.length === 0) return;
      const scope: AttemptScope = { attempt, spec: readJobSpec(job), deadline };
      for (let start = 0; start < pending.length; start += config.imageBatchSize) {
        await processBatch(scope, pending.slice(start, start + config.imageBatchSize), signal);
      }
    },

    async release(job: Job, images: () => Promise<JobImage[]>): Promise<void> {
      await settling.get(job.id);
      if (job.inputKey === null) return;
      // A delivered image's input went as it was recorded; the rest go now.
      const kept = (await images()).filter((image) => image.status !== ImageStatus.delivered);
      await tempStore.removeInputs(job.inputKey, kept.map((image) => image.index));
    },
  };
}
