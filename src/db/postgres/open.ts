import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { Logger } from 'pino';
import { DatabaseOpenError, describeError, maskPassword } from './errors.js';

/** `migrations/postgres/` at the package root, from both `src/db/postgres/` and `dist/db/postgres/`. */
export const postgresMigrationsFolder = fileURLToPath(new URL('../../../migrations/postgres', import.meta.url));

/**
 * The advisory lock key migrations run under. Outside the 32-bit range, so
 * it can never equal a `hashtext(name)` key of `exclusively`.
 */
const MIGRATION_LOCK = 0x696d_676a_6f62; // "imgjob"

export interface PostgresOptions {
  readonly log: Logger;
  /** Connections the pool opens at the most (the LISTEN connection comes on top). */
  readonly maxConnections?: number;
  /** How long opening a connection may take before it fails. */
  readonly connectTimeoutMs?: number;
  /** A statement running longer is cancelled by the server (migrations excepted). */
  readonly statementTimeoutMs?: number;
}

const DEFAULT_MAX_CONNECTIONS = 10;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/**
 * A transaction is never left open across anything but its own statements;
 * one idle this long belongs to a process that stopped mid-way, and the
 * server ends it rather than let its row locks hold up every instance.
 */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

const KEEPALIVE_DELAY_MS = 10_000;

/** PostgreSQL's `int8`: bigint columns (ids and epoch milliseconds) and counts, all within 2^53. */
const INT8_OID = 20;

/**
 * The connection settings of every connection the service opens, pooled or
 * not. `synchronous_commit` is set on each connection, whatever the
 * server's or role's default, so a commit (a submission's 202) has reached
 * the server's disk. int8 is read as a number on these connections only,
 * not by changing pg's global parsers.
 */
function connectionConfig(url: string, options: PostgresOptions): pg.PoolConfig {
  const types = new pg.TypeOverrides();
  types.setTypeParser(INT8_OID, (value: string) => Number(value));
  return {
    connectionString: url,
    types,
    application_name: 'image-jobs',
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statement_timeout: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    options: '-c synchronous_commit=on',
    // A connection whose server vanished without a word (a host gone) is found by TCP keepalive, not left waiting.
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
  };
}

/**
 * Connects to PostgreSQL at `url`, applies pending migrations, and returns
 * the pool the store runs on. Instances starting at once apply each
 * migration once: the migrator runs under an advisory lock, on the one
 * connection that holds it, and the others find the work done. A server
 * that cannot be reached or a malformed URL rejects with a
 * `DatabaseOpenError` naming the URL (password masked).
 */
export async function openPostgres(url: string, options: PostgresOptions): Promise<pg.Pool> {
  const shown = maskPassword(url);
  const protocol = URL.canParse(url) ? new URL(url).protocol : null;
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new DatabaseOpenError(shown, 'expected a URL of the form postgres://user:password@host:5432/database');
  }
  const config = connectionConfig(url, options);
  await migrateOnce(config, shown);
  // Pipelined: a transaction sends statements it need not wait between together (see `createTransactions`).
  const pool = new pg.Pool({ ...config, pipeline: true, max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS });
  // An idle pooled connection that breaks (a server restart) is dropped by the pool; unheard, the event would end the process.
  pool.on('error', (error) => options.log.warn({ err: error }, 'a pooled PostgreSQL connection failed; the pool opens another'));
  // A connection lost while checked out and between statements (the server gone mid-transaction) emits `error`
  // on its client, which would end the process unheard; the statement that next uses it fails and says why.
  pool.on('connect', (client) => client.on('error', (error) => options.log.debug({ err: error }, 'a PostgreSQL connection in use failed')));
  return pool;
}

async function migrateOnce(config: pg.PoolConfig, shown: string): Promise<void> {
  // Not pooled: the lock is the session's, and its waits and migrations may outlast any statement timeout.
  const client = new pg.Client({ ...config, statement_timeout: 0 });
  try {
    await client.connect();
  } catch (error) {
    throw new DatabaseOpenError(shown, `cannot connect: ${describeError(error)}`, { cause: error });
  }
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await migrate(drizzle({ client }), { migrationsFolder: postgresMigrationsFolder });
  } catch (error) {
    throw new DatabaseOpenError(shown, `cannot apply migrations: ${describeError(error)}`, { cause: error });
  } finally {
    // Ending the session releases the lock even when the unlock cannot be sent.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
