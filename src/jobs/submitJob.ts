import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { groupCommit } from '../db/groupCommit.js';
import type { JobRepository, NewImage, NewJob, StoredJob } from '../db/jobRepository.js';
import { checkDestination } from '../destination/index.js';
import { HttpProblem, RETRY_AFTER_SECONDS } from '../http/problem.js';
import { receiveMultipart } from '../http/submission/multipart.js';
import { receiveRawBody } from '../http/submission/rawBody.js';
import type { ReceivedUpload } from '../http/submission/receivedUpload.js';
import { ImageRefusedError, probeImage } from '../image/probe.js';
import type { Scheduler } from '../queue/scheduler.js';
import { confirmDurable } from '../storage/diskFull.js';
import { DiskLowError, type DiskReservation, type DiskSpace } from '../storage/diskSpace.js';
import type { TempStore } from '../storage/tempStore.js';
import { conversionOptions, jobOptionsSchema } from './options.js';
import { requestFingerprint } from './requestFingerprint.js';

export interface SubmitDeps {
  readonly config: Config;
  readonly repo: JobRepository;
  readonly scheduler: Scheduler;
  readonly tempStore: TempStore;
  readonly disk: DiskSpace;
  readonly lifecycle: { shuttingDown: boolean };
}

export interface Submission {
  readonly req: IncomingMessage;
  readonly contentType: string;
  readonly query: Record<string, string | string[] | undefined>;
  readonly idempotencyKey: string | null;
  readonly log: Logger;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function parseIdempotencyKey(header: string): string | null {
  if (header === '') return null;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new HttpProblem(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
  }
  return header;
}

const unavailable = (code: string, detail: string): HttpProblem => new HttpProblem(503, code, detail, { 'Retry-After': RETRY_AFTER_SECONDS });

/** Size of the `options` part a multipart body may carry besides its images. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/**
 * What a submission may write to the temp store: its declared length (the
 * body bounds the files it holds), or, undeclared, one image of
 * MAX_UPLOAD_BYTES. Never more than the form allows, so a length too large to
 * accept is refused as too large, not as a disk problem.
 */
function bytesToReserve(req: IncomingMessage, form: 'multipart' | 'raw', config: Config): number {
  const most = form === 'raw' ? config.maxUploadBytes : config.maxUploadBytes * config.maxImagesPerJob + MULTIPART_OVERHEAD_BYTES;
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  return Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, most) : config.maxUploadBytes;
}

/**
 * Refuses new work while the service is full or stopping; otherwise reserves
 * the disk space the body may take. A repeat of a stored request adds no job,
 * so only the disk is asked for it: its body is still written, to compare.
 */
async function reserveCapacity(deps: SubmitDeps, bytes: number, repeat: boolean): Promise<DiskReservation> {
  if (repeat) return reserveDisk(deps, bytes);
  if (deps.lifecycle.shuttingDown) throw unavailable('shutting_down', 'The service is shutting down; submit again shortly.');
  if (deps.repo.liveCount() >= deps.config.maxQueuedJobs) {
    throw unavailable('queue_full', `The queue holds ${deps.config.maxQueuedJobs} jobs (MAX_QUEUED_JOBS); submit again later.`);
  }
  return reserveDisk(deps, bytes);
}

async function reserveDisk(deps: SubmitDeps, bytes: number): Promise<DiskReservation> {
  try {
    return await deps.disk.reserve(bytes);
  } catch (error) {
    if (error instanceof DiskLowError) {
      throw unavailable('disk_low', 'Free disk space, less what uploads in progress will take, is below MIN_FREE_DISK_BYTES; submit again later.');
    }
    throw error;
  }
}

/** The two forms a submission's body may take, from its Content-Type. */
function formOf(contentType: string): 'multipart' | 'raw' {
  const type = contentType.toLowerCase();
  if (type === 'multipart/form-data') return 'multipart';
  if (type.startsWith('image/') || type === 'application/octet-stream') return 'raw';
  throw new HttpProblem(
    415,
    'unsupported_media_type',
    'Send multipart/form-data with files in "images", or one raw image with Content-Type image/* or application/octet-stream.',
  );
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
        throw new HttpProblem(error.status, error.code, `${which}${error.message}`);
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
  throw new HttpProblem(
    422,
    'idempotency_key_reused',
    `This Idempotency-Key was used for job ${earlier.job.id} with different images or options; repeat that request exactly, or use a new key for a new request.`,
  );
}

export type SubmitJob = (submission: Submission) => Promise<StoredJob>;

/**
 * Submissions, from body to durable row. The files and their names are
 * fsync'd first; then the row is written in an IMMEDIATE
 * transaction shared with the submissions that reach the same point in the
 * same turn of the event loop; the 202 waits until that commit is durable
 * (`makeDurable`). Anything refused before the commit removes the files, so
 * no row and no temp file remain.
 */
export function createSubmitter(deps: SubmitDeps): SubmitJob {
  const insert = groupCommit((jobs: readonly NewJob[]) => deps.repo.insertJobs(jobs, Date.now()));

  return async (submission) => {
    // A repeated key is answered from the first job, even while the queue is full; its body is still read, to compare.
    const earlier = submission.idempotencyKey === null ? null : deps.repo.findByIdempotencyKey(submission.idempotencyKey);
    const form = formOf(submission.contentType);
    const reservation = await reserveCapacity(deps, bytesToReserve(submission.req, form, deps.config), earlier !== null);
    const key = deps.tempStore.newKey();
    let stored: StoredJob | null = null;
    // Images are hashed only when a key is given: only then is the request compared with another.
    const keyed = submission.idempotencyKey !== null;
    try {
      const landed = (bytes: number): void => reservation.landed(bytes);
      const upload =
        form === 'multipart'
          ? await receiveMultipart(submission.req, deps.tempStore, key, deps.config, landed, keyed)
          : await receiveRawBody(submission.req, submission.query, deps.tempStore, key, deps.config.maxUploadBytes, landed, keyed);
      const parsed = jobOptionsSchema.safeParse(upload.options);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'options'}: ${issue.message}`).join('; ');
        throw new HttpProblem(400, 'invalid_options', `Invalid options: ${issues}.`);
      }
      const options = parsed.data;
      const fingerprint = keyed ? requestFingerprint(options, upload.files) : null;
      if (earlier === null) {
        const destinationProblem = checkDestination(options.destination, upload.files.length, deps.config.uploadAllowedHosts);
        if (destinationProblem !== null) throw new HttpProblem(400, 'invalid_destination', destinationProblem);
        // Reading the headers overlaps making the files durable; a refused upload does not wait for that.
        const images = await probeAll(deps, key, upload);
        await Promise.all(upload.files.map((file) => file.synced));
        stored = await insert({
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
      } else {
        stored = earlier;
      }
      if (stored.created) {
        deps.scheduler.notify(stored.job.runAt);
        submission.log.info({ jobId: stored.job.id, images: stored.images.length }, 'job queued');
      } else {
        checkSameRequest(stored, fingerprint);
        await deps.tempStore.removeInputs(key, upload.files.map((file) => file.index)); // the first submission with this key owns its own files
      }
      // A repeat's first job may have been committed a moment ago, its own answer still pending.
      await confirmDurable(deps.repo.makeDurable(), `Job ${stored.job.id} was stored`, `/jobs/${stored.job.id}`);
      return stored;
    } catch (error) {
      // A committed job keeps its files whatever happens after the commit. A file that cannot be
      // removed now is logged and left to the sweeper: the client gets the answer its request
      // earned, not this.
      if (stored?.created !== true) {
        // The indexes a refused body may have left files under: every one its form allows.
        const inputs = Array.from({ length: form === 'multipart' ? deps.config.maxImagesPerJob : 1 }, (_, index) => index);
        await deps.tempStore.removeInputs(key, inputs).catch((removeError: unknown) => submission.log.warn({ err: removeError }, 'could not remove a refused upload; the sweeper will'));
      }
      throw error;
    } finally {
      // Stored or refused, its files now count in the volume's own figure (or are gone).
      reservation.release();
    }
  };
}
