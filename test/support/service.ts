import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { expect, onTestFinished } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import type { JobStore } from '../../src/jobs/store.js';
import { createLogger } from '../../src/log.js';
import { createService, type Service } from '../../src/service.js';
import { tempDir } from './db.js';
import { openFilesUnder } from './descriptors.js';
import { postgresRows } from './postgresRows.js';
import { sqliteRows } from './sqliteRows.js';
import type { StoreRows } from './stores.js';

export interface RunningService {
  readonly service: Service;
  readonly config: Config;
  readonly url: string;
  /** The service's job store (`service.jobs.store`). */
  readonly store: JobStore;
  /**
   * The service's rows, arranged and read behind its back as an operator or
   * an earlier process would have left them, on whichever backend it runs.
   */
  readonly rows: StoreRows;
  /**
   * A connection of the test's own to the service's SQLite file, opened on
   * first use: for what only SQLite has (its file, its pragmas). Tests that
   * also run on PostgreSQL use `rows`.
   */
  readonly db: Database.Database;
  /** Files left in the temp store, relative to it. */
  tempFiles(): string[];
}

/**
 * Starts the real service in this process on an ephemeral port with a fresh
 * DATA_DIR (or `env.DATA_DIR`, left for its owner to remove); it is stopped
 * when the test finishes. `env` overrides configuration; `log` replaces the
 * logger (to read what the service logs).
 */
export async function startService(env: Record<string, string> = {}, log?: Logger): Promise<RunningService> {
  const dataDir = env.DATA_DIR ?? tempDir('image-jobs-service-');
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: '0',
    LOG_LEVEL: 'silent',
    MIN_FREE_DISK_BYTES: '0',
    RETRY_BASE_MS: '50',
    RETRY_MAX_MS: '200',
    SHUTDOWN_GRACE_MS: '2000',
    ...env,
  });
  const service = await createService(config, log ?? createLogger(config.logLevel));
  const port = await service.start();
  let stopped = false;
  let db: Database.Database | null = null;
  const store = service.jobs.store;
  const rows = config.databaseUrl === null ? sqliteRows(config.dbPath, store) : postgresRows(config.databaseUrl, store);
  onTestFinished(async () => {
    db?.close();
    await rows.close();
    if (!stopped) await service.stop();
    stopped = true;
    // A stopped service holds nothing open in its DATA_DIR: database, temp store, results.
    expect(openFilesUnder(dataDir)).toEqual([]);
  });
  return {
    service,
    config,
    url: `http://127.0.0.1:${port}`,
    store,
    rows: rows.rows,
    get db() {
      db ??= new Database(config.dbPath);
      db.pragma('busy_timeout = 5000');
      return db;
    },
    tempFiles: () => (fs.readdirSync(config.tmpDir, { recursive: true }) as string[]).map((entry) => path.normalize(entry)),
  };
}
