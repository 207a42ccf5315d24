import Router from '@koa/router';
import type { AppDeps } from '../app.js';

/** Liveness and readiness for load balancers and orchestrators. */
export function healthRoutes(deps: AppDeps): Router {
  const router = new Router();

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const checks = {
      database: await deps.jobs.store.liveCount().then(() => true, () => false),
      disk: await deps.disk.measure().then((figures) => !figures.low, () => false),
      accepting: !deps.jobs.stopping.aborted,
    };
    const ready = Object.values(checks).every(Boolean);
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
  });

  return router;
}
