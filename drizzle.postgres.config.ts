import { defineConfig } from 'drizzle-kit';

/** The PostgreSQL schema's migrations, beside SQLite's (`drizzle.sqlite.config.ts`). */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/postgres/schema.ts',
  out: './migrations/postgres',
});
