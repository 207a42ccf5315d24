/**
 * The service as it was before its memory fixes, kept only to be measured
 * against (`npm run bench:before-after`). The same REST shape as the service
 * (`POST /jobs` with an image as the raw body answers 202 and the job;
 * `GET /jobs/{id}` answers the job, holding the answer until the job ends
 * when asked with `Prefer: wait=N`), with the same packages (koa, sharp,
 * pino), carrying exactly the five defects its write-up lists, and nothing
 * worse:
 *
 * 1. each job keeps its image bytes, the upload and the converted output, in
 *    the job queue (a Map in memory), never cleared;
 * 2. completed jobs are never pruned from that queue;
 * 3. each image is decoded twice: a full decode to read it (its size), then
 *    the conversion decodes it again;
 * 4. no concurrency limit: every job starts the moment it is submitted; no
 *    graceful shutdown (SIGTERM ends it at once, node's default);
 * 5. buffers kept referenced after upload: the request's chunks stay on the
 *    job beside the image joined from them; images are converted in batches
 *    of 10, to WebP at quality 100 (the settings before the fix).
 *
 * Everything else is as the service does it: the same conversion (EXIF
 * orientation applied, sRGB, WebP at libwebp's effort 4), sharp as it comes,
 * a JSON log line `listening` with the port. Run compiled under plain node.
 */
import Router from '@koa/router';
import Koa from 'koa';
import pino from 'pino';
import sharp from 'sharp';
import { preferredWait } from '../../src/http/prefer.js';

const BATCH_SIZE = 10;
const WEBP_QUALITY = 100;
const WEBP_EFFORT = 4;

interface Image {
  /** The uploaded bytes, kept for the job's life (defect 1). */
  readonly input: Buffer;
  width?: number;
  height?: number;
  /** The converted bytes, kept for the job's life (defect 1). */
  output?: Buffer;
}

interface Job {
  readonly id: number;
  status: 'running' | 'succeeded' | 'failed';
  readonly createdAt: number;
  finishedAt?: number;
  error?: string;
  readonly images: Image[];
  /** The request body's chunks, still referenced after they were joined into the image (defect 5). */
  readonly uploadChunks: Buffer[];
  /** Settles when the job ends. */
  readonly ended: Promise<void>;
}

const log = pino();
/** The job queue: every job ever submitted, never pruned (defect 2). */
const jobs = new Map<number, Job>();
let lastId = 0;

/** Full decode to read the image (defect 3): its pixels, only for their size. */
async function readImage(image: Image): Promise<void> {
  const { info } = await sharp(image.input).raw().toBuffer({ resolveWithObject: true });
  image.width = info.width;
  image.height = info.height;
}

async function convert(image: Image): Promise<void> {
  await readImage(image);
  image.output = await sharp(image.input).rotate().toColourspace('srgb').webp({ quality: WEBP_QUALITY, effort: WEBP_EFFORT }).toBuffer();
}

async function run(job: Job): Promise<void> {
  for (let start = 0; start < job.images.length; start += BATCH_SIZE) {
    await Promise.all(job.images.slice(start, start + BATCH_SIZE).map(convert));
  }
}

const view = (job: Job) => ({
  id: job.id,
  status: job.status,
  createdAt: new Date(job.createdAt).toISOString(),
  finishedAt: job.finishedAt === undefined ? null : new Date(job.finishedAt).toISOString(),
  error: job.error ?? null,
  images: job.images.map((image, index) => ({ index, width: image.width ?? null, height: image.height ?? null, inputBytes: image.input.length, outputBytes: image.output?.length ?? null })),
});

const router = new Router();

router.post('/jobs', async (ctx) => {
  const uploadChunks: Buffer[] = [];
  for await (const chunk of ctx.req) uploadChunks.push(chunk as Buffer);
  let settle = (): void => undefined;
  const ended = new Promise<void>((resolve) => (settle = resolve));
  lastId += 1;
  const job: Job = { id: lastId, status: 'running', createdAt: Date.now(), images: [{ input: Buffer.concat(uploadChunks) }], uploadChunks, ended };
  jobs.set(job.id, job);
  // No limit (defect 4): the job starts now, however many run already.
  run(job).then(
    () => (job.status = 'succeeded'),
    (error: unknown) => {
      job.status = 'failed';
      job.error = String(error);
    },
  ).finally(() => {
    job.finishedAt = Date.now();
    settle();
  });
  ctx.status = 202;
  ctx.set('Location', `/jobs/${job.id}`);
  ctx.body = view(job);
});

router.get('/jobs/:id', async (ctx) => {
  const job = jobs.get(Number(ctx.params.id));
  if (job === undefined) {
    ctx.status = 404;
    ctx.body = { error: 'no such job' };
    return;
  }
  const wait = preferredWait(ctx.get('prefer'));
  if (wait !== null && job.finishedAt === undefined) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([job.ended, new Promise((resolve) => (timer = setTimeout(resolve, wait * 1_000)))]);
    clearTimeout(timer);
  }
  ctx.body = view(job);
});

const app = new Koa();
app.use(router.routes());
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  log.info({ port: typeof address === 'object' && address !== null ? address.port : null }, 'listening');
});
