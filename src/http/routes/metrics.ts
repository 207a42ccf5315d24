import Router from '@koa/router';
import type { AppDeps } from '../app.js';

/** Prometheus scrape endpoint (text exposition format). */
export function metricsRoutes(deps: AppDeps): Router {
  const router = new Router();
  const { registry } = deps.ops.metrics;

  router.get('/metrics', async (ctx) => {
    ctx.body = await registry.metrics();
    ctx.type = registry.contentType;
  });

  return router;
}
