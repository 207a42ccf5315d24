import type { Job, JobImage } from '../db/jobRepository.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A URL without its query or fragment: pre-signed URLs carry their secret there. */
export function withoutQuery(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '[invalid url]';
  }
}

/** The destination as the API shows it: no query strings, no header values. */
function destinationView(destination: Record<string, unknown>): Record<string, unknown> {
  if (destination.type !== 'http') return destination;
  const view: Record<string, unknown> = { type: 'http' };
  if (typeof destination.url === 'string') view.url = withoutQuery(destination.url);
  if (Array.isArray(destination.urls)) view.urls = destination.urls.map((url) => withoutQuery(String(url)));
  if (destination.headers && typeof destination.headers === 'object') {
    view.headers = Object.fromEntries(Object.keys(destination.headers).map((name) => [name, '[redacted]']));
  }
  return view;
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
    status: image.status,
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
