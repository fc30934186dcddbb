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
    // No retries: a test that passes only on its second try hides a bug (issue 16). Tests wait on
    // conditions, never on timing.
    retry: 0,
  },
});
