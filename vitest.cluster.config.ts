import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: the end-to-end scenarios on the real control plane (test/cluster): etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler built from Go modules, and our node agent.
// One control plane per test file, files one after another (two cores).
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    globalSetup: ['test/cluster/global-setup.ts'],
    testTimeout: 180_000,
    // The first run builds the control plane from Go modules (minutes on two cores).
    hookTimeout: 3_600_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
