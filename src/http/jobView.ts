import type { Job, JobImage } from '../jobs/types.js';
import { ImageStatus, JobStatus } from '../jobs/states.js';
import { templateWithoutQuery } from '../destination/httpUpload.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The destination as the API shows it: no query strings, no header values. */
function destinationView(destination: Record<string, unknown>): Record<string, unknown> {
  if (destination.type !== 'http') return destination;
  const view: Record<string, unknown> = { type: 'http' };
  if (typeof destination.url === 'string') view.url = templateWithoutQuery(destination.url);
  if (Array.isArray(destination.urls)) view.urls = destination.urls.map((url) => templateWithoutQuery(String(url)));
  if (destination.headers && typeof destination.headers === 'object') {
    view.headers = Object.fromEntries(Object.keys(destination.headers).map((name) => [name, '[redacted]']));
  }
  return view;
}

/** Every state `GET /jobs/{id}` may show an image in. */
export const shownImageStatuses = [ImageStatus.pending, ImageStatus.delivered, JobStatus.failed, JobStatus.cancelled] as const;
type ShownImageStatus = (typeof shownImageStatuses)[number];

/**
 * An image's state as the API shows it. The database keeps `pending` until
 * the image is delivered; once its job has ended without delivering it, it
 * never will be, and the image takes its job's end: `failed` or `cancelled`.
 */
function shownStatus(job: Job, image: JobImage): ShownImageStatus {
  if (image.status === 'pending' && (job.status === JobStatus.failed || job.status === JobStatus.cancelled)) return job.status;
  return image.status;
}

function imageView(job: Job, image: JobImage) {
  const delivered = image.status === 'delivered';
  return {
    index: image.index,
    originalName: image.originalName,
    inputFormat: image.inputFormat,
    width: image.width,
    height: image.height,
    pages: image.pages,
    inputBytes: image.inputBytes,
    status: shownStatus(job, image),
    outputFormat: image.outputFormat,
    outputWidth: image.outputWidth,
    outputHeight: image.outputHeight,
    outputBytes: image.outputBytes,
    scaledToFit: image.scaledToFit,
    location: !delivered ? null : job.destination.type === 'http' ? image.location : `/jobs/${job.id}/images/${image.index}`,
  };
}

/** The job as `GET /jobs/{id}` shows it; images only when given. */
export function jobView(job: Job, images?: readonly JobImage[]) {
  return {
    id: job.id,
    status: job.status,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    priority: job.priority,
    options: job.options,
    destination: destinationView(job.destination),
    lastError: job.lastError,
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    runAt: iso(job.runAt),
    ...(images ? { images: images.map((image) => imageView(job, image)) } : {}),
  };
}
