// The scenarios of test/e2e/scenarios run the same assertions on every cluster the harness drives:
// the simulated one (test/e2e, `startE2E`) and the real control plane (test/cluster, `startRealE2E`).
// Each scenario gets a function that starts the harness on the cluster under test.
import { afterEach } from 'vitest';
import type { ClusterUnderTest, E2E, E2EOptions } from '../harness.js';

export type StartE2E = (options?: E2EOptions) => Promise<E2E<ClusterUnderTest>>;

/** `start`, with the harness it started stopped after each test of the enclosing suite. */
export function startedPerTest(start: StartE2E): StartE2E {
  let current: E2E<ClusterUnderTest> | undefined;
  afterEach(async () => {
    const e = current;
    current = undefined;
    await e?.stop();
  });
  return async (options) => {
    if (current) throw new Error('one end-to-end harness per test: the previous one is still running');
    current = await start(options);
    return current;
  };
}
