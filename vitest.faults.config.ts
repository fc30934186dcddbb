import { defineConfig } from 'vitest/config';

// `npm run test:faults`: the full fault and fuzz suite.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // No retries: a flaky fault test is a bug to fix, not to absorb (issue 16).
    retry: 0,
  },
});
