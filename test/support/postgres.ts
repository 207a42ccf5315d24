import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import { describeError, maskPassword } from '../../src/db/postgres/errors.js';

/** The server tests make their databases on: DATABASE_URL's, else the local one every machine of the project runs. */
export const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function onAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

let availability: Promise<boolean> | undefined;

/**
 * Whether the PostgreSQL tests can run, decided once per test file. No
 * server and no DATABASE_URL: they are skipped, with one line saying so.
 * Under CI=true, or with DATABASE_URL set, a server that cannot be reached
 * rejects, so the tests fail rather than skip.
 */
export function postgresAvailable(): Promise<boolean> {
  availability ??= onAdmin(async () => true).catch((error: unknown) => {
    const why = `PostgreSQL at ${maskPassword(adminUrl)} cannot be reached (${describeError(error)})`;
    if (process.env.CI === 'true' || process.env.DATABASE_URL !== undefined) throw new Error(why, { cause: error });
    console.error(`${why}: the PostgreSQL tests are skipped; start it or set DATABASE_URL to run them`);
    return false;
  });
  return availability;
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
