import fsp from 'node:fs/promises';
import Router from '@koa/router';
import type { AppDeps } from '../app.js';

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
export async function freeDiskBytes(dir: string): Promise<number> {
  const stats = await fsp.statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Liveness and readiness for load balancers and orchestrators. */
export function healthRoutes(deps: AppDeps): Router {
  const router = new Router();

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const checks = {
      database: (() => {
        try {
          deps.repo.liveCount();
          return true;
        } catch {
          return false;
        }
      })(),
      disk: (await freeDiskBytes(deps.config.dataDir).catch(() => 0)) >= deps.config.minFreeDiskBytes,
      accepting: !deps.lifecycle.shuttingDown,
    };
    const ready = Object.values(checks).every(Boolean);
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
  });

  return router;
}
