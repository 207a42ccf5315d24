import Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Jobs } from '../jobs/jobs.js';
import type { Operations } from '../ops/operations.js';
import type { DiskSpace } from '../storage/diskSpace.js';
import type { TempStore } from '../storage/tempStore.js';
import { authMiddleware } from './auth.js';
import { HttpProblem, problemMiddleware } from './problem.js';
import { requestContext } from './requestContext.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { debugRoutes } from './routes/debug.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { metricsRoutes } from './routes/metrics.js';
import { openApiRoutes } from './routes/openapi.js';

export interface AppDeps {
  readonly config: Config;
  readonly log: Logger;
  /** The jobs core: its verbs, its store for reads, and whether it is stopping (`/ready` answers 503, submissions are refused). */
  readonly jobs: Jobs;
  readonly tempStore: TempStore;
  /** The free-disk check: submissions reserve against it, `/ready` reads it, a full disk is reported to it. */
  readonly disk: DiskSpace;
  /** The sweeper, metrics, memory samples and runtime figures behind the debug routes, /metrics and the dashboard. */
  readonly ops: Operations;
}

/** The HTTP API. No side effects until the caller listens. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true; // errors are rendered and logged by problemMiddleware
  app.use(requestContext(deps.log));
  // Requests are work the event-loop delay is measured during.
  app.use((_ctx, next) => deps.ops.runtime.during(next));
  app.use(problemMiddleware(deps.log, (error) => deps.disk.noticeFull({ err: error })));
  app.use(authMiddleware(deps.config.apiToken));
  app.use(async (ctx, next) => {
    await next();
    if (ctx.body != null) return;
    // allowedMethods (below) answers a path some route serves, but not with this method, with a bare 405
    // (501 for a method no route uses) and an Allow header listing the route's methods (RFC 9110 §15.5.6).
    const allow = ctx.response.get('Allow');
    if ((ctx.status === 405 || ctx.status === 501) && allow !== '') {
      throw new HttpProblem(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; use ${allow}.`, { Allow: allow });
    }
    // No router answered.
    if (ctx.status === 404 || ctx.status === 501) throw new HttpProblem(404, 'not_found', `No route for ${ctx.method} ${ctx.path}.`);
  });
  for (const router of [
    healthRoutes(deps),
    jobRoutes(deps),
    openApiRoutes(),
    debugRoutes(deps),
    metricsRoutes(deps),
    dashboardRoutes(deps),
  ]) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  return app;
}
