import fs from 'node:fs';
import Router from '@koa/router';
import type { AppDeps } from '../app.js';
import { jobView } from '../jobView.js';

/**
 * The page lives beside the sources and is read from the package root, so
 * the same path works from `src/` (tsx, tests) and from `dist/` (npm start)
 * without a copy step.
 */
const PAGE = new URL('../../../src/http/dashboard/index.html', import.meta.url);

/** The page's scripts and styles are inline; it fetches only from this origin and loads nothing else. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const RECENT_JOBS = 25;

/** `GET /`: the dashboard page, and the two JSON routes it refreshes itself from. */
export function dashboardRoutes(deps: AppDeps): Router {
  const router = new Router();
  const { config } = deps;
  const { store } = deps.jobs;
  const { sampler, sweeper } = deps.ops;
  const page = fs.readFileSync(PAGE, 'utf8');

  router.get('/', (ctx) => {
    ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    ctx.body = page;
  });

  /** Counts by status, the newest jobs and the last sweep. */
  router.get('/stats', async (ctx) => {
    const lastSweep = sweeper.lastRun;
    const [counts, queueDepth, recentJobs] = await Promise.all([store.countByStatus(), store.liveCount(), store.listJobs({ limit: RECENT_JOBS })]);
    ctx.body = {
      instanceId: deps.jobs.scheduler.owner,
      generatedAt: new Date().toISOString(),
      uptimeSeconds: Math.round(process.uptime()),
      counts,
      queueDepth,
      maxQueuedJobs: config.maxQueuedJobs,
      recentJobs: recentJobs.map((job) => jobView(job)),
      lastSweep: lastSweep === null ? null : { ...lastSweep, at: new Date(lastSweep.at).toISOString() },
      sweepCron: config.sweepCron,
    };
  });

  /** The memory and queue-depth samples of the last hour, oldest first. */
  router.get('/stats/samples', (ctx) => {
    ctx.body = { intervalMs: sampler.intervalMs, capacity: sampler.capacity, samples: sampler.samples() };
  });

  return router;
}
