import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { UnusableSettingError, type Config } from './config.js';
import { DatabaseOpenError, maskPassword } from './db/postgres/errors.js';
import { openPostgres } from './db/postgres/open.js';
import { createPostgresStore } from './db/postgres/store.js';
import { openDatabase } from './db/sqlite/open.js';
import { createSqliteStore } from './db/sqlite/store.js';
import { createApp } from './http/app.js';
import { createJobs, type Jobs } from './jobs/jobs.js';
import type { JobStore } from './jobs/store.js';
import { createOperations, type Operations } from './ops/operations.js';
import { createImagePipeline } from './pipeline/imagePipeline.js';
import { newOwnerId, type AttemptEnd, type JobHandler } from './queue/scheduler.js';
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
  readonly jobs: Jobs;
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
 * Wires the service's parts together, in the order a request meets them,
 * once the job store is open (its migrations applied). Nothing runs until `start`.
 */
export async function createService(config: Config, log: Logger): Promise<Service> {
  // This instance's name: its attempts' lease owner, its signals' sender, its metrics' instance_id.
  const instanceId = newOwnerId();
  const store = await openStore(config, log, instanceId);
  const tempStore = await openTempStore(config).catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  const disk = createDiskSpace(config.dataDir, config.minFreeDiskBytes, log);
  const conversions = new Semaphore(config.convertConcurrency);
  const handler = createImagePipeline({ config, tempStore, log, conversions });
  const onAttemptEnd = (end: AttemptEnd): void => {
    if (end.errorCode === DISK_FULL) disk.noticeFull({ jobId: end.job.id, attempt: end.attempt });
    void ops.metrics.recordAttemptEnd(end);
  };
  // Attempts are work the event-loop delay is measured during.
  const monitored: JobHandler = { perform: (context) => ops.runtime.during(() => handler.perform(context)), release: (job, images) => handler.release(job, images) };
  const jobs = createJobs({ ...config, config, store, handler: monitored, log, onAttemptEnd, tempStore, disk, owner: instanceId });
  const ops = createOperations({ config, log, store, tempStore, jobWatch: jobs.watch, instanceId });
  const app = createApp({ config, log, jobs, tempStore, disk, ops });

  const server = http.createServer(app.callback());
  /** Requests whose answer is not yet written: at shutdown, those answered last (held `Prefer: wait` requests) get to finish. */
  let answering = 0;
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    answering += 1;
    res.once('close', () => (answering -= 1));
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;

  return {
    jobs,
    ops,
    server,

    async start(): Promise<number> {
      // Before any answer: the counts every submission and route read must include rows changed by hand while stopped.
      await store.recountJobs();
      await new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException): void => reject(listenError(error, config));
        server.once('error', onError);
        server.listen(config.port, config.host, () => {
          server.off('error', onError);
          resolve();
        });
      });
      await jobs.scheduler.start();
      ops.start();
      const { port } = server.address() as AddressInfo;
      log.info({ host: config.host, port, dataDir: config.dataDir, backend: store.backend, instanceId }, 'listening');
      return port;
    },

    async stop(): Promise<boolean> {
      const deadline = Date.now() + config.shutdownGraceMs;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Refuses new work and answers requests held by Prefer: wait at once, then lets attempts finish.
      const stopped = jobs.stop(config.shutdownGraceMs);
      await ops.stop();
      log.info(await stopped, 'scheduler stopped');
      // Held requests were told to answer when the stop began; their answers are written before the connections go.
      while (answering > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      server.closeAllConnections();
      await closed;
      await Promise.all([store.close(), tempStore.close()]);
      // An abandoned conversion keeps its slot until libvips is done with it.
      const drainUntil = deadline + LIBVIPS_DRAIN_MS;
      while (conversions.inUse > 0 && Date.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 50));
      return conversions.inUse === 0;
    },
  };
}

/** The temp store; whatever stops it is DATA_DIR's problem, reported as such. */
async function openTempStore(config: Config): Promise<TempStore> {
  try {
    return createTempStore(config.tmpDir);
  } catch (error) {
    throw new UnusableSettingError('DATA_DIR', config.dataDir, error);
  }
}

/**
 * The job store: PostgreSQL at DATABASE_URL when it is set, else the SQLite
 * file in DATA_DIR. Whatever stops it is that setting's problem, reported as such.
 */
async function openStore(config: Config, log: Logger, instanceId: string): Promise<JobStore> {
  if (config.databaseUrl !== null) {
    const url = config.databaseUrl;
    let pool;
    try {
      pool = await openPostgres(url, { log });
    } catch (error) {
      if (error instanceof DatabaseOpenError) throw new UnusableSettingError('DATABASE_URL', error.url, error);
      throw error;
    }
    try {
      return await createPostgresStore(pool, { log, instanceId });
    } catch (error) {
      // Its connection for signals could not be opened: the pool goes too, and the start names the setting.
      await pool.end().catch(() => undefined);
      throw new UnusableSettingError('DATABASE_URL', maskPassword(url), error);
    }
  }
  try {
    return createSqliteStore(openDatabase(config.dbPath, { synchronous: config.sqliteSynchronous }));
  } catch (error) {
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
