import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { makeDirectorySync } from '../../storage/makeDirectory.js';

/** `migrations/sqlite/` at the package root, from both `src/db/sqlite/` and `dist/db/sqlite/`. */
export const migrationsFolder = fileURLToPath(new URL('../../../migrations/sqlite', import.meta.url));

export interface OpenOptions {
  synchronous: 'FULL' | 'NORMAL';
  /** How long a writer waits for another connection's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

/** WAL file size SQLite truncates back to after a checkpoint. */
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Opens (creating if needed) the jobs database with the service's pragmas and
 * applies pending migrations. better-sqlite3's build sets WAL's synchronous to
 * NORMAL by default, so it is always set explicitly here.
 */
export function openDatabase(file: string, options: OpenOptions): Database.Database {
  makeDirectorySync(path.dirname(file));
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous}`);
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5_000}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
  // Automatic checkpoints every 1000 pages keep the WAL small under steady load;
  // the sweeper also runs a TRUNCATE checkpoint.
  db.pragma('wal_autocheckpoint = 1000');
  migrate(drizzle(db), { migrationsFolder });
  return db;
}
