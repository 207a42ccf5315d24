import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server the benches use: `DATABASE_URL` when set (any
 * database on it: the benches only create and drop their own there), else
 * the local server's `postgres` database.
 */
export function serverUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

/** `url` without its password, for printing. */
export function shown(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}

const CONNECT_TIMEOUT_MS = 3_000;

/** Why the server at `url` cannot be used, or null when it answers. */
export async function unreachable(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (error) {
    return `no PostgreSQL answers at ${shown(url)}: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** Drops the database, ending whatever sessions still use it. */
  drop(): Promise<void>;
}

/** Runs `sql` on a connection of its own to the server's database in `url`. */
async function onServer(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database `imgjobs_bench_<random>` on the server of `url`, for one run. */
export async function createBenchDatabase(url: string): Promise<BenchDatabase> {
  const name = `imgjobs_bench_${randomBytes(6).toString('hex')}`;
  await onServer(url, `CREATE DATABASE ${name}`);
  const own = new URL(url);
  own.pathname = `/${name}`;
  return {
    name,
    url: own.toString(),
    // WITH (FORCE) (PostgreSQL 13+): a pool a failed side left open must not keep the database.
    drop: () => onServer(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
