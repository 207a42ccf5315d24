import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';

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

interface KoaLikeError {
  status?: unknown;
  expose?: unknown;
  message?: unknown;
}

/** The `code` of the problem a request was answered with, for its log line; undefined when it was not an error. */
export function problemCodeOf(ctx: Context): string | undefined {
  return (ctx.state as { problemCode?: string }).problemCode;
}

/** The one place that turns a thrown value into a response. Unknown errors become a logged, generic 500. */
export function problemMiddleware(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (thrown) {
      let problem: HttpProblem;
      if (thrown instanceof HttpProblem) {
        problem = thrown;
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
