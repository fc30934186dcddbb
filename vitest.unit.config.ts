import { defineConfig } from 'vitest/config';

// `npm run test:unit`: the fast tests — the pure core, the coordinator's table, steps and codecs, the
// `wait` verdict, certificates, metrics, plan, RBAC and the webhook handler — run from the sources with
// no build, no simulated or real cluster, no database and no subprocess.
export default defineConfig({
  test: {
    include: [
      'test/core/**/*.test.ts',
      'test/coordinator/**/*.test.ts',
      'test/wait/**/*.test.ts',
      'test/certs/**/*.test.ts',
      'test/metrics/**/*.test.ts',
      'test/plan/**/*.test.ts',
      'test/rbac/**/*.test.ts',
      'test/log/**/*.test.ts',
      'test/webhook/**/*.test.ts',
    ],
    // These need Postgres or a running server process.
    exclude: ['test/coordinator/db-pool.test.ts', 'test/webhook/https.test.ts', 'node_modules/**'],
    pool: 'forks',
  },
});
