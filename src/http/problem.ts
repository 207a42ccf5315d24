import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { JobRefusedError, StoreUnavailableError, type Refusal } from '../jobs/errors.js';
import { DISK_FULL, DiskFullError, UnconfirmedWriteError } from '../storage/diskFull.js';

/**
 * An error the API answers with: an HTTP status, a stable machine `code`,
 * and a `detail` that tells the client what to change. Rendered as
 * `application/problem+json` (RFC 9457) by `problemMiddleware`.
 */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

/** Seconds a client should wait before trying again after a 503. */
export const RETRY_AFTER_SECONDS = '30';

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Codes for the errors Koa and its parts raise themselves (they carry `status` and `expose`). */
const genericCodes: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

/** The status each kind of the jobs core's refusals is answered with. */
const refusalStatus: Record<Refusal, number> = {
  invalid: 400,
  unsupported: 415,
  unprocessable: 422,
  unavailable: 503,
};

interface KoaLikeError {
  status?: unknown;
  expose?: unknown;
  message?: unknown;
}

/** The `code` of the problem a request was answered with, for its log line; undefined when it was not an error. */
export function problemCodeOf(ctx: Context): string | undefined {
  return (ctx.state as { problemCode?: string }).problemCode;
}

/**
 * The one place that turns a thrown value into a response. Unknown errors
 * become a logged, generic 500. A full disk is the service's condition, not
 * the client's fault: 503 `disk_full` with Retry-After, and `onDiskFull`
 * tells the operator. An answer given once part of the request's body was
 * read, and not all of it, closes the connection: Node drains only a body
 * no one began to read, so the next request on the connection would never
 * be parsed. A body left untouched (a refusal before the upload began) is
 * drained by Node and the connection stays usable, and the client, still
 * sending, is not cut off before it can read the answer.
 */
export function problemMiddleware(log: Logger, onDiskFull: (error: DiskFullError) => void): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (thrown) {
      let problem: HttpProblem;
      if (thrown instanceof HttpProblem) {
        problem = thrown;
      } else if (thrown instanceof StoreUnavailableError) {
        (ctx.state.log as Logger | undefined ?? log).error({ err: thrown }, 'the database cannot be reached');
        problem = new HttpProblem(
          503, 'database_unavailable',
          'The database cannot be reached right now; try again later (with the same Idempotency-Key, a repeated submission is answered with the job it stored, if it did).',
          { 'Retry-After': RETRY_AFTER_SECONDS },
        );
      } else if (thrown instanceof JobRefusedError) {
        const status = refusalStatus[thrown.refusal];
        problem = new HttpProblem(status, thrown.code, thrown.message, status === 503 ? { 'Retry-After': RETRY_AFTER_SECONDS } : {});
      } else if (thrown instanceof DiskFullError) {
        onDiskFull(thrown);
        problem = thrown instanceof UnconfirmedWriteError
          ? new HttpProblem(
            503, DISK_FULL,
            `${thrown.committed}, but the disk is full and could not confirm it durable: it stands unless the machine loses power first.${thrown.jobId === null ? '' : ' Read its Location rather than sending the request again.'}`,
            { 'Retry-After': RETRY_AFTER_SECONDS, ...(thrown.jobId === null ? {} : { Location: `/jobs/${thrown.jobId}` }) },
          )
          : new HttpProblem(503, DISK_FULL, 'The disk is full: nothing was stored or changed. Try again later.', { 'Retry-After': RETRY_AFTER_SECONDS });
      } else {
        const error = (thrown ?? {}) as KoaLikeError;
        const status = typeof error.status === 'number' ? error.status : 500;
        if (status >= 400 && status < 500 && error.expose === true) {
          problem = new HttpProblem(status, genericCodes[status] ?? 'bad_request', String(error.message));
        } else {
          (ctx.state.log as Logger | undefined ?? log).error({ err: thrown }, 'unhandled error');
          problem = new HttpProblem(500, 'internal_error', 'The server met an unexpected error; it has been logged.');
        }
      }
      ctx.status = problem.status;
      ctx.state.problemCode = problem.code;
      ctx.set(problem.headers);
      if (!ctx.req.complete && ctx.req.readableDidRead) ctx.set('Connection', 'close');
      ctx.type = 'application/problem+json';
      ctx.body = {
        type: `urn:image-jobs:problem:${problem.code}`,
        title: titles[problem.status] ?? 'Error',
        status: problem.status,
        detail: problem.detail,
        code: problem.code,
        instance: ctx.path,
      };
    }
  };
}
