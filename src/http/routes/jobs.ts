import fs from 'node:fs';
import Router from '@koa/router';
import type { Context } from 'koa';
import { localOutputPath } from '../../destination/index.js';
import { jobStatuses, type JobStatus } from '../../jobs/states.js';
import type { Job } from '../../jobs/types.js';
import type { AppDeps } from '../app.js';
import { jobView } from '../jobView.js';
import { preferredWait } from '../prefer.js';
import { HttpProblem } from '../problem.js';
import { submissionFrom } from '../submission/fromRequest.js';

const MAX_PAGE = 100;
/** How often a request waiting for a job reads it again, in case a signal of its end was missed. */
const RECHECK_MS = 1_000;

const contentTypes: Record<string, string> = { webp: 'image/webp', avif: 'image/avif', jpeg: 'image/jpeg', png: 'image/png' };

function parseId(value: string | undefined, what = 'job id'): number {
  if (value === undefined || !/^\d{1,15}$/.test(value)) throw new HttpProblem(404, 'not_found', `There is no ${what} "${value ?? ''}".`);
  return Number(value);
}

function single(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new HttpProblem(400, 'invalid_query', `The query parameter "${name}" is given more than once.`);
  return value;
}

const encodeCursor = (id: number): string => Buffer.from(`id:${id}`).toString('base64url');

function decodeCursor(cursor: string): number {
  const match = /^id:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new HttpProblem(400, 'invalid_cursor', 'The cursor is not one this API gave out.');
  return Number(match[1]);
}

/** Why image `index` of `job` has no result to download: not yet, or never (its job ended without it). */
function notDelivered(job: Job, index: number): HttpProblem {
  switch (job.status) {
    case 'cancelled':
      return new HttpProblem(409, 'image_not_delivered', `Job ${job.id} was cancelled before image ${index} was delivered; it has no result.`);
    case 'failed':
      return new HttpProblem(
        409,
        'image_not_delivered',
        `Job ${job.id} failed before image ${index} was delivered (${job.lastError?.code ?? 'unknown'}: ${job.lastError?.message ?? 'no message'}); it has no result.`,
      );
    default:
      return new HttpProblem(409, 'image_not_ready', `Image ${index} of job ${job.id} is not delivered yet (job ${job.status}).`);
  }
}

/** Submission, reading, listing, cancelling, retrying jobs and downloading local results. */
export function jobRoutes(deps: AppDeps): Router {
  const router = new Router();
  const { jobs } = deps;
  const { store } = jobs;

  const loadJob = async (ctx: Context): Promise<Job> => {
    const job = await store.getJob(parseId(ctx.params.id));
    if (!job) throw new HttpProblem(404, 'job_not_found', `There is no job ${ctx.params.id}.`);
    return job;
  };

  /**
   * Holds a `GET /jobs/{id}` until its job has ended, `seconds` have passed,
   * the client has gone or shutdown has begun, and returns the job as it is then.
   */
  async function untilEnded(ctx: Context, job: Job, seconds: number): Promise<Job> {
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    ctx.res.once('close', onClose);
    try {
      return (await jobs.waitForEnd(job.id, seconds * 1_000, gone.signal, RECHECK_MS)) ?? job;
    } finally {
      ctx.res.off('close', onClose);
    }
  }

  router.post('/jobs', async (ctx) => {
    const { job, images, created } = await jobs.submit(submissionFrom(ctx, deps.config, deps.tempStore));
    ctx.status = created ? 202 : 200;
    ctx.set('Location', `/jobs/${job.id}`);
    ctx.body = jobView(job, images);
  });

  router.get('/jobs', async (ctx) => {
    const status = single(ctx, 'status');
    if (status !== undefined && !(jobStatuses as readonly string[]).includes(status)) {
      throw new HttpProblem(400, 'invalid_query', `status must be one of ${jobStatuses.join(', ')}.`);
    }
    const limitText = single(ctx, 'limit') ?? '20';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_PAGE) {
      throw new HttpProblem(400, 'invalid_query', `limit must be an integer from 1 to ${MAX_PAGE}.`);
    }
    const cursor = single(ctx, 'cursor');
    const page = await store.listJobs({ status: status as JobStatus | undefined, limit, beforeId: cursor === undefined ? undefined : decodeCursor(cursor) });
    const last = page.at(-1);
    ctx.body = { jobs: page.map((job) => jobView(job)), nextCursor: page.length === limit && last ? encodeCursor(last.id) : null };
  });

  router.get('/jobs/:id', async (ctx) => {
    let job = await loadJob(ctx);
    const wait = preferredWait(ctx.get('prefer'));
    ctx.vary('Prefer');
    if (wait !== null) {
      ctx.set('Preference-Applied', `wait=${wait}`);
      job = await untilEnded(ctx, job, wait);
    }
    ctx.body = jobView(job, await store.listImages(job.id));
  });

  router.post('/jobs/:id/cancel', async (ctx) => {
    const result = await jobs.cancel(parseId(ctx.params.id));
    if (result === null) throw new HttpProblem(404, 'job_not_found', `There is no job ${ctx.params.id}.`);
    if (!result.cancelled) {
      throw new HttpProblem(409, 'job_ended', `Job ${result.job.id} has already ended (${result.job.status}); there is nothing to cancel.`);
    }
    ctx.body = jobView(result.job, await store.listImages(result.job.id));
  });

  router.post('/jobs/:id/retry', async (ctx) => {
    const job = await loadJob(ctx);
    switch (job.status) {
      case 'queued': {
        const due = (await jobs.runNow(job.id)) ?? job;
        ctx.body = jobView(due, await store.listImages(job.id));
        return;
      }
      case 'running':
        throw new HttpProblem(409, 'job_running', `Job ${job.id} is running now.`);
      case 'succeeded':
        throw new HttpProblem(409, 'job_succeeded', `Job ${job.id} has already succeeded.`);
      default:
        throw new HttpProblem(
          409,
          'input_released',
          `Job ${job.id} is ${job.status} and its input images were deleted when it ended (by design: no image bytes outlive their job). Submit the images again as a new job.`,
        );
    }
  });

  router.get('/jobs/:id/images/:index', async (ctx) => {
    const job = await loadJob(ctx);
    const index = parseId(ctx.params.index, 'image index');
    const image = (await store.listImages(job.id)).find((candidate) => candidate.index === index);
    if (!image) throw new HttpProblem(404, 'image_not_found', `Job ${job.id} has no image ${index}.`);
    if (job.destination.type !== 'local') {
      throw new HttpProblem(409, 'not_in_local_store', `Job ${job.id} delivers to an HTTP destination; its results are not kept here.`);
    }
    if (image.status !== 'delivered' || image.outputFormat === null) throw notDelivered(job, index);
    const file = localOutputPath(deps.config.outputDir, job.id, index, image.outputFormat);
    const stat = await fs.promises.stat(file).catch(() => null);
    if (!stat) throw new HttpProblem(404, 'result_gone', `The result of image ${index} of job ${job.id} is no longer stored.`);
    ctx.type = contentTypes[image.outputFormat] ?? 'application/octet-stream';
    ctx.length = stat.size;
    ctx.body = fs.createReadStream(file);
  });

  return router;
}
