import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { UnusableSettingError, type Config } from './config.js';
import { createJobRepository, type JobRepository } from './db/jobRepository.js';
import { openDatabase } from './db/open.js';
import { createApp } from './http/app.js';
import { createJobWatch } from './jobs/jobWatch.js';
import { createOperations, type Operations } from './ops/operations.js';
import { createImagePipeline } from './pipeline/imagePipeline.js';
import { createScheduler, type AttemptEnd, type JobHandler, type Scheduler } from './queue/scheduler.js';
import { Semaphore } from './queue/semaphore.js';
import { DISK_FULL } from './storage/diskFull.js';
import { createDiskSpace } from './storage/diskSpace.js';
import { createTempStore, type TempStore } from './storage/tempStore.js';

/** Slow clients cannot hold a connection: headers within 30 s, a whole request within 10 min. */
const HEADERS_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 600_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** After the grace period, how long a conversion already inside libvips may take to finish before the process ends anyway. */
const LIBVIPS_DRAIN_MS = 5_000;

export interface Service {
  readonly db: Database.Database;
  readonly repo: JobRepository;
  readonly scheduler: Scheduler;
  readonly ops: Operations;
  readonly server: http.Server;
  /** Listens, then starts the scheduler; resolves to the bound port. */
  start(): Promise<number>;
  /**
   * Graceful stop: refuse new work, let attempts finish within the grace
   * period, put the rest back, close the database. Resolves to false when a
   * conversion abandoned by its attempt is still running in libvips a few
   * seconds past the grace period (a normal exit would wait for it).
   */
  stop(): Promise<boolean>;
}

/**
 * Wires the service's parts together, in the order a request meets them.
 * Nothing runs until `start`.
 */
export function createService(config: Config, log: Logger): Service {
  const { db, tempStore } = openDataDir(config);
  const repo = createJobRepository(db);
  const disk = createDiskSpace(config.dataDir, config.minFreeDiskBytes, log);
  const conversions = new Semaphore(config.convertConcurrency);
  const handler = createImagePipeline({ config, repo, tempStore, log, conversions });
  const jobWatch = createJobWatch();
  const ops = createOperations({ config, log, repo, tempStore, jobWatch });
  const onAttemptEnd = (end: AttemptEnd): void => {
    if (end.errorCode === DISK_FULL) disk.noticeFull({ jobId: end.job.id, attempt: end.attempt });
    ops.metrics.recordAttemptEnd(end);
    jobWatch.changed(end.job.id);
  };
  // Attempts are work the event-loop delay is measured during.
  const monitored: JobHandler = { perform: (context) => ops.runtime.during(() => handler.perform(context)), release: (job) => handler.release(job) };
  const scheduler = createScheduler({ ...config, repo, handler: monitored, log, onAttemptEnd });
  const lifecycle = { shuttingDown: false };
  const app = createApp({ config, log, repo, scheduler, tempStore, disk, lifecycle, ops, jobWatch });

  const server = http.createServer(app.callback());
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;

  return {
    db,
    repo,
    scheduler,
    ops,
    server,

    async start(): Promise<number> {
      // Before any answer: the counts every submission and route read must include rows changed by hand while stopped.
      repo.recountJobs();
      await new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException): void => reject(listenError(error, config));
        server.once('error', onError);
        server.listen(config.port, config.host, () => {
          server.off('error', onError);
          resolve();
        });
      });
      scheduler.start();
      ops.start();
      const { port } = server.address() as AddressInfo;
      log.info({ host: config.host, port, dataDir: config.dataDir }, 'listening');
      return port;
    },

    async stop(): Promise<boolean> {
      const deadline = Date.now() + config.shutdownGraceMs;
      lifecycle.shuttingDown = true;
      // Requests held by Prefer: wait answer now, with their job as it is.
      jobWatch.wakeAll();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await ops.stop();
      const result = await scheduler.stop(config.shutdownGraceMs);
      log.info(result, 'scheduler stopped');
      server.closeAllConnections();
      await closed;
      await Promise.all([repo.close(), tempStore.close()]);
      db.close();
      // An abandoned conversion keeps its slot until libvips is done with it.
      const drainUntil = deadline + LIBVIPS_DRAIN_MS;
      while (conversions.inUse > 0 && Date.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 50));
      return conversions.inUse === 0;
    },
  };
}

/** The database and the temp store; whatever stops them is DATA_DIR's problem, reported as such. */
function openDataDir(config: Config): { db: Database.Database; tempStore: TempStore } {
  let db: Database.Database | undefined;
  try {
    db = openDatabase(config.dbPath, { synchronous: config.sqliteSynchronous });
    return { db, tempStore: createTempStore(config.tmpDir) };
  } catch (error) {
    db?.close();
    throw new UnusableSettingError('DATA_DIR', config.dataDir, error);
  }
}

/** Names the setting behind a failed listen: the address (HOST) or the port (PORT). */
function listenError(error: NodeJS.ErrnoException, config: Config): Error {
  // getaddrinfo failed, or the name resolved to an address this machine does not have.
  const hostCodes = ['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EADDRNOTAVAIL'];
  if (error.code !== undefined && hostCodes.includes(error.code)) return new UnusableSettingError('HOST', config.host, error);
  if (error.code === 'EADDRINUSE' || error.code === 'EACCES') return new UnusableSettingError('PORT', String(config.port), error);
  return error;
}
