import { defineConfig } from 'vitest/config';

// `npm test`: everything but the long fault suite (test/faults/**/*.slow.test.ts) and the real
// control plane's suite (test/cluster, `npm run test:cluster`).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.slow.test.ts', 'test/cluster/**', 'node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // End-to-end tests run several servers, Postgres and subprocesses on a 2-core machine: one retry
    // absorbs a scheduling hiccup; a test that fails twice fails the run.
    retry: 1,
  },
});
