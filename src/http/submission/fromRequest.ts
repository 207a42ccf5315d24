import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { Submission } from '../../jobs/submitJob.js';
import type { TempStore } from '../../storage/tempStore.js';
import { HttpProblem } from '../problem.js';
import { receiveMultipart } from './multipart.js';
import { receiveRawBody } from './rawBody.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

function parseIdempotencyKey(header: string): string | null {
  if (header === '') return null;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new HttpProblem(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
  }
  return header;
}

/** Size of the `options` part a multipart body may carry besides its images. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

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

/**
 * `POST /jobs` as the jobs core takes it. What the body may write to the temp
 * store is its declared length (the body bounds the files it holds), or,
 * undeclared, one image of MAX_UPLOAD_BYTES; never more than the form allows,
 * so a length too large to accept is refused as too large, not as a disk
 * problem.
 */
export function submissionFrom(ctx: Context, config: Config, tempStore: TempStore): Submission {
  const idempotencyKey = parseIdempotencyKey(ctx.get('idempotency-key'));
  const form = formOf(ctx.request.type);
  const { req } = ctx;
  const most = form === 'raw' ? config.maxUploadBytes : config.maxUploadBytes * config.maxImagesPerJob + MULTIPART_OVERHEAD_BYTES;
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  return {
    idempotencyKey,
    reserveBytes: Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, most) : config.maxUploadBytes,
    maxFiles: form === 'multipart' ? config.maxImagesPerJob : 1,
    receive: (key, landed, hash) =>
      form === 'multipart'
        ? receiveMultipart(req, tempStore, key, config, landed, hash)
        : receiveRawBody(req, ctx.query, tempStore, key, config.maxUploadBytes, landed, hash),
    log: ctx.state.log as Logger,
  };
}
