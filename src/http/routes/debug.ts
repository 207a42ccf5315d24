import Router from '@koa/router';
import { memoryStats, sweepView } from '../../ops/memoryStats.js';
import { releaseSharpCache } from '../../ops/sharpState.js';
import type { AppDeps } from '../app.js';

/**
 * The original service's debug routes, at their original paths (the auth
 * middleware keeps `/debug/` to loopback clients unless API_TOKEN is set).
 */
export function debugRoutes(deps: AppDeps): Router {
  const router = new Router();
  const { sweeper, runtime } = deps.ops;
  const sources = { store: deps.jobs.store, tempStore: deps.tempStore, scheduler: deps.jobs.scheduler, runtime, sweeper };

  router.get('/debug/memory-stats', async (ctx) => {
    ctx.body = await memoryStats(sources);
  });

  /** Runs the sweeper now (joining one in progress) and empties libvips' operation cache. */
  router.post('/debug/memory/cleanup-images', async (ctx) => {
    const report = await sweeper.sweep(Date.now());
    const cache = releaseSharpCache();
    const { memory_stats } = await memoryStats(sources);
    ctx.body = {
      sweep: sweepView(report),
      sharp_cache: {
        items_released: cache.before.items.current - cache.after.items.current,
        libvips_memory_mb_before: cache.before.memory.current,
        libvips_memory_mb_after: cache.after.memory.current,
      },
      memory_stats,
    };
  });

  return router;
}
