import pg from 'pg';
import { describeError, maskPassword } from '../../src/db/postgres/errors.js';

/** The server tests make their databases on: DATABASE_URL's, else the local one every machine of the project runs. */
export const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function onAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Why the test server cannot be reached, or null when it can. */
export async function unreachableBecause(): Promise<string | null> {
  try {
    await onAdmin(async () => undefined);
    return null;
  } catch (error) {
    return `PostgreSQL at ${maskPassword(adminUrl)} cannot be reached (${describeError(error)})`;
  }
}

/** Under CI=true, or with DATABASE_URL set, the PostgreSQL tests must run: a server that cannot be reached fails them. */
export const postgresRequired = process.env.CI === 'true' || process.env.DATABASE_URL !== undefined;
