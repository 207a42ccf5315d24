import type { Logger } from 'pino';
import { expect } from 'vitest';
import type { JobStore } from '../../src/jobs/store.js';
import { postgresAvailable, testPostgres } from './postgres.js';
import { startService, type RunningService } from './service.js';

type Backend = JobStore['backend'];

export interface ServiceBackend {
  readonly name: Backend;
  /** False when the backend's server cannot be reached here (the skip is announced once by the backend). */
  readonly available: boolean;
  /** `startService` on a fresh, empty database of this backend (dropped after the test); `env` may override the rest. */
  start(env?: Record<string, string>, log?: Logger): Promise<RunningService>;
}

/** Starts the service with `env` and checks it runs on `backend`: a test meant for one backend must not pass on the other. */
async function startOn(backend: Backend, env: Record<string, string>, log?: Logger): Promise<RunningService> {
  const running = await startService(env, log);
  expect(running.store.backend).toBe(backend);
  return running;
}

/** The backends the API's contract tests run the service on: SQLite in DATA_DIR, and PostgreSQL at DATABASE_URL. */
export const serviceBackends: readonly ServiceBackend[] = [
  { name: 'sqlite', available: true, start: (env = {}, log) => startOn('sqlite', env, log) },
  {
    name: 'postgres',
    available: await postgresAvailable(),
    start: async (env = {}, log) => startOn('postgres', { DATABASE_URL: await testPostgres(), ...env }, log),
  },
];
