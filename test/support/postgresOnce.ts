import type { TestProject } from 'vitest/node';
import { postgresRequired, unreachableBecause } from './postgresAdmin.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Why the PostgreSQL test server cannot be reached, or null when it can (see `postgresAvailable`). */
    postgresUnreachable: string | null;
  }
}

/**
 * Vitest global setup: looks for the PostgreSQL test server once per run,
 * so that a run without one says so in one line, not once per test file.
 */
export default async function checkPostgres({ provide }: TestProject): Promise<void> {
  const why = await unreachableBecause();
  if (why !== null && !postgresRequired) console.error(`${why}: the PostgreSQL tests are skipped; start it or set DATABASE_URL to run them`);
  provide('postgresUnreachable', why);
}
