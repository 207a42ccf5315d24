import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { checkDestination } from '../destination/index.js';
import { ImageRefusedError, probeImage } from '../image/probe.js';
import { confirmDurable } from '../storage/diskFull.js';
import { DiskLowError, type DiskReservation, type DiskSpace } from '../storage/diskSpace.js';
import type { TempStore } from '../storage/tempStore.js';
import { JobRefusedError, StoreUnavailableError } from './errors.js';
import { conversionOptions, jobOptionsSchema } from './options.js';
import { requestFingerprint } from './requestFingerprint.js';
import type { JobStore } from './store.js';
import type { NewImage, NewJob, StoredJob } from './types.js';
import type { ReceivedUpload } from './upload.js';

export interface SubmitDeps {
  readonly config: Config;
  readonly store: JobStore;
  /** Stores a job (group commit), resolving once it is durable. */
  readonly add: (job: NewJob) => Promise<StoredJob>;
  /** Aborted once the service is stopping. */
  readonly stopping: AbortSignal;
  readonly tempStore: TempStore;
  readonly disk: DiskSpace;
}

/** A submission as the transport hands it over: its body is read only through `receive`. */
export interface Submission {
  readonly idempotencyKey: string | null;
  /** The most the body may write to the temp store: what is reserved on the disk before it is read. */
  readonly reserveBytes: number;
  /** The most image files the body may hold: the indexes a refused body may have left files under. */
  readonly maxFiles: number;
  /**
   * Writes the body's images into the temp store under `key`, telling
   * `landed` of the bytes as they land, hashing each image when `hash`.
   */
  receive(key: string, landed: (bytes: number) => void, hash: boolean): Promise<ReceivedUpload>;
  readonly log: Logger;
}

/** Resolves once a stored job survives power loss; a full disk then says the job stands all the same. */
export function confirmStored(store: JobStore, stored: StoredJob): Promise<void> {
  return confirmDurable(store.makeDurable(), `Job ${stored.job.id} was stored`, stored.job.id);
}

/**
 * Refuses new work while the service is full or stopping; otherwise reserves
 * the disk space the body may take. A repeat of a stored request adds no job,
 * so only the disk is asked for it: its body is still written, to compare.
 */
async function reserveCapacity(deps: SubmitDeps, bytes: number, repeat: boolean): Promise<DiskReservation> {
  if (repeat) return reserveDisk(deps, bytes);
  if (deps.stopping.aborted) throw new JobRefusedError('shutting_down', 'The service is shutting down; submit again shortly.');
  if ((await deps.store.liveCount()) >= deps.config.maxQueuedJobs) {
    throw new JobRefusedError('queue_full', `The queue holds ${deps.config.maxQueuedJobs} jobs (MAX_QUEUED_JOBS); submit again later.`);
  }
  return reserveDisk(deps, bytes);
}

async function reserveDisk(deps: SubmitDeps, bytes: number): Promise<DiskReservation> {
  try {
    return await deps.disk.reserve(bytes);
  } catch (error) {
    if (error instanceof DiskLowError) {
      throw new JobRefusedError('disk_low', 'Free disk space, less what uploads in progress will take, is below MIN_FREE_DISK_BYTES; submit again later.');
    }
    throw error;
  }
}

/** Reads every image's header (no pixel decode); any refused image refuses the job. */
async function probeAll(deps: SubmitDeps, key: string, upload: ReceivedUpload): Promise<NewImage[]> {
  const images: NewImage[] = [];
  for (const file of upload.files) {
    try {
      const probed = await probeImage({ path: deps.tempStore.inputPath(key, file.index), head: file.head, bytes: file.bytes }, deps.config.maxInputPixels);
      images.push({ originalName: file.originalName, inputFormat: probed.format, width: probed.width, height: probed.height, pages: probed.pages, inputBytes: file.bytes });
    } catch (error) {
      if (error instanceof ImageRefusedError) {
        const which = upload.files.length > 1 ? `Image ${file.index}: ` : '';
        throw new JobRefusedError(error.code, `${which}${error.message}`);
      }
      throw error;
    }
  }
  return images;
}

/**
 * A key's second use must repeat its first request exactly (options,
 * destination, image bytes), as the IETF Idempotency-Key draft asks: anything
 * else is another request under a used key, refused with 422. A job stored
 * without a fingerprint cannot be compared, and is answered as before.
 */
function checkSameRequest(earlier: StoredJob, fingerprint: string | null): void {
  if (earlier.requestFingerprint === null || earlier.requestFingerprint === fingerprint) return;
  throw new JobRefusedError(
    'idempotency_key_reused',
    `This Idempotency-Key was used for job ${earlier.job.id} with different images or options; repeat that request exactly, or use a new key for a new request.`,
  );
}

export type SubmitJob = (submission: Submission) => Promise<StoredJob>;

/**
 * Submissions, from body to durable row. The files and their names are
 * fsync'd first; then the row is written (`add`: a transaction shared with
 * the submissions that reach the same point in the same turn of the event
 * loop), and the answer waits until that commit is durable. Anything refused
 * before the commit removes the files, so no row and no temp file remain.
 */
export function createSubmitter(deps: SubmitDeps): SubmitJob {
  return async (submission) => {
    // A repeated key is answered from the first job, even while the queue is full; its body is still read, to compare.
    const earlier = submission.idempotencyKey === null ? null : await deps.store.findByIdempotencyKey(submission.idempotencyKey);
    const reservation = await reserveCapacity(deps, submission.reserveBytes, earlier !== null);
    const key = deps.tempStore.newKey();
    let stored: StoredJob | null = null;
    // Images are hashed only when a key is given: only then is the request compared with another.
    const keyed = submission.idempotencyKey !== null;
    try {
      const upload = await submission.receive(key, (bytes) => reservation.landed(bytes), keyed);
      const parsed = jobOptionsSchema.safeParse(upload.options);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'options'}: ${issue.message}`).join('; ');
        throw new JobRefusedError('invalid_options', `Invalid options: ${issues}.`);
      }
      const options = parsed.data;
      const fingerprint = keyed ? requestFingerprint(options, upload.files) : null;
      if (earlier === null) {
        const destinationProblem = checkDestination(options.destination, upload.files.length, deps.config.uploadAllowedHosts);
        if (destinationProblem !== null) throw new JobRefusedError('invalid_destination', destinationProblem);
        // Reading the headers overlaps making the files durable; a refused upload does not wait for that.
        const images = await probeAll(deps, key, upload);
        await Promise.all(upload.files.map((file) => file.synced));
        stored = await deps.add({
          priority: options.priority,
          maxAttempts: options.maxAttempts ?? deps.config.maxAttempts,
          options: { ...conversionOptions(options) },
          destination: options.destination,
          idempotencyKey: submission.idempotencyKey,
          requestFingerprint: fingerprint,
          inputKey: key,
          runAt: Date.now() + options.delayMs,
          images,
        });
        if (stored.created) submission.log.info({ jobId: stored.job.id, images: stored.images.length }, 'job queued');
      } else {
        stored = earlier;
        // The first job may have been committed a moment ago, its own answer still pending.
        await confirmStored(deps.store, stored);
      }
      if (!stored.created) {
        checkSameRequest(stored, fingerprint);
        await deps.tempStore.removeInputs(key, upload.files.map((file) => file.index)); // the first submission with this key owns its own files
      }
      return stored;
    } catch (error) {
      // A committed job keeps its files whatever happens after the commit. So does one that may have
      // committed: a store that could not be reached may have lost only the commit's answer (the
      // sweeper removes the files once no live job owns them). A file that cannot be removed now is
      // logged and left to the sweeper: the client gets the answer its request earned, not this.
      if (stored?.created !== true && !(error instanceof StoreUnavailableError)) {
        const inputs = Array.from({ length: submission.maxFiles }, (_, index) => index);
        await deps.tempStore.removeInputs(key, inputs).catch((removeError: unknown) => submission.log.warn({ err: removeError }, 'could not remove a refused upload; the sweeper will'));
      }
      throw error;
    } finally {
      // Stored or refused, its files now count in the volume's own figure (or are gone).
      reservation.release();
    }
  };
}
