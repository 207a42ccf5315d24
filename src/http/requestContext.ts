import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { problemCodeOf } from './problem.js';

const INCOMING_ID = /^[A-Za-z0-9._-]{1,100}$/;

/**
 * Routes that probes, scrapers and the dashboard's polls call every few
 * seconds: logged at debug, so they do not drown the jobs' lines at info.
 * An error answer on them is still logged at info.
 */
const POLLED_PATHS = new Set(['/health', '/ready', '/metrics', '/stats', '/stats/samples']);

/**
 * Gives each request an id (the client's `X-Request-Id` when sane), a child
 * logger carrying it, and one log line when the response is done, with the
 * problem's `code` when it is an error. Only the path is logged: query
 * strings may carry secrets.
 */
export function requestContext(log: Logger): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const id = INCOMING_ID.test(incoming) ? incoming : randomUUID();
    const started = performance.now();
    ctx.state.requestId = id;
    ctx.state.log = log.child({ requestId: id });
    ctx.set('X-Request-Id', id);
    try {
      await next();
    } finally {
      const line = { method: ctx.method, path: ctx.path, status: ctx.status, code: problemCodeOf(ctx), ms: Math.round(performance.now() - started) };
      const level = POLLED_PATHS.has(ctx.path) && ctx.status < 400 ? 'debug' : 'info';
      (ctx.state.log as Logger)[level](line, 'request');
    }
  };
}
