// The end-to-end downgrade scenarios of test/e2e (test/e2e/scenarios/downgrade.ts) on the real
// control plane, with the same assertions (target version and original replicas, alembic head, zero
// violations, step sequence), and the negative control that proves the violation recorder live here:
// the same downgrade with the webhook removed records violations.
import { describe, expect, it } from 'vitest';
import {
  FULL_SEQUENCE,
  expectDowngraded,
  headOf,
  releaseReady,
  releaseSpec,
  stepSequence,
  upgradeRelease,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../e2e/harness.js';
import { downgradeScenarios } from '../e2e/scenarios/downgrade.js';
import { startedPerTest } from '../e2e/scenarios/start.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

downgradeScenarios(real.start);

/** The chart with the worker's `wait-for-airflow-migrations` turned off (workers.waitForMigrations.enabled=false). */
async function withoutWorkerMigrationWait(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<void> {
  await e.admin.rest.request('PATCH', `/apis/apps/v1/namespaces/${s.namespace}/deployments/${s.release}-worker`, {
    body: [{ op: 'remove', path: '/spec/template/spec/initContainers' }],
    contentType: 'application/json-patch+json',
  });
  await waitFor(
    'worker rolled out without its init container',
    () =>
      releaseReady(e.sim, s) &&
      e.sim.store
        .list(RESOURCES.pods, s.namespace)
        .items.filter((p) => p.metadata.labels?.component === 'worker' && !p.metadata.deletionTimestamp)
        .every((p) => !(p.spec as { initContainers?: unknown[] }).initContainers),
    60_000,
    100,
  );
}

describe('downgrade 3.1.0 -> 3.0.2 on the real control plane', () => {
  const start = startedPerTest(real.start);

  it('negative control: the same downgrade without the webhook records violations', async () => {
    const e2e = await start();
    const s = releaseSpec('airflow');
    await e2e.installRelease(s);
    await withoutWorkerMigrationWait(e2e, s);
    // No guard: nothing holds the rollout. The 3.0.2 worker (no migration wait) starts on the 3.1.0 schema.
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    await waitFor('a violation recorded', () => e2e.sim.runtime.violations.list().length > 0, 60_000, 100);
    const [violation] = e2e.sim.runtime.violations.list();
    expect(violation).toMatchObject({
      kind: 'unknown-schema',
      namespace: 'airflow',
      container: 'worker',
      imageVersion: '3.0.2',
      dbRevision: headOf('3.1.0'),
    });
  });

  it('the same release shape with the guard: drained before release, zero violations', async () => {
    const e2e = await start();
    const s = releaseSpec('airflow');
    await e2e.installRelease(s);
    await withoutWorkerMigrationWait(e2e, s);
    await e2e.startGuard();
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
  });
});
