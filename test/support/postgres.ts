import { randomBytes } from 'node:crypto';
import { inject, onTestFinished } from 'vitest';
import { adminUrl, onAdmin, postgresRequired } from './postgresAdmin.js';

/**
 * Whether the PostgreSQL tests can run, as the run's global setup found
 * (`postgresOnce.ts`). No server and no DATABASE_URL: they are skipped, the
 * run saying so in one line. Under CI=true, or with DATABASE_URL set, a
 * server that cannot be reached rejects, so the tests fail rather than skip.
 */
export async function postgresAvailable(): Promise<boolean> {
  const why = inject('postgresUnreachable');
  if (why === undefined) throw new Error('test/support/postgresOnce.ts must run as a global setup of vitest');
  if (why !== null && postgresRequired) throw new Error(why);
  return why === null;
}

/**
 * A fresh, empty database of its own (`imgjobs_<random>`) on the test
 * server; its URL. Dropped when the test finishes, connections left open
 * to it included.
 */
export async function testPostgres(): Promise<string> {
  const name = `imgjobs_${randomBytes(6).toString('hex')}`;
  await onAdmin((client) => client.query(`CREATE DATABASE ${name}`));
  onTestFinished(() => onAdmin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
