import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/buildOnce.ts', 'test/support/postgresOnce.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers and child processes; two cores are the limit.
    maxWorkers: 2,
    // Memory tests collect garbage before they measure what is retained.
    execArgv: ['--expose-gc'],
    reporters: ['default'],
  },
});
