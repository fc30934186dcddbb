// The end-to-end downgrade scenarios of test/e2e on the real control plane, with the same
// assertions (target version and original replicas, alembic head, zero violations, step sequence),
// and the negative control that proves the violation recorder live here: the same downgrade with
// the webhook removed records violations.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  FULL_SEQUENCE,
  eventsOf,
  expectDowngraded,
  headOf,
  releaseReady,
  setImage,
  stepSequence,
  upgradeRelease,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../e2e/harness.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { startClusterForE2E, startRealE2E } from './e2e-backend.js';
import type { RealCluster } from './cluster.js';

let cluster: RealCluster | undefined;
let e2e: E2E<ClusterUnderTest> | undefined;

beforeAll(async () => {
  cluster = await startClusterForE2E((line) => console.log(line));
  console.log(
    `start-up: build check ${cluster.timings.buildMs} ms, control plane ${cluster.timings.controlPlaneMs} ms, node Ready ${cluster.timings.nodeMs} ms`,
  );
});
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});
afterAll(async () => {
  await cluster?.stop();
});

function spec(overrides: Partial<ReleaseSpec> = {}): ReleaseSpec {
  return { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 }, ...overrides };
}

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
  it('Helm upgrade with the migration Job as a post-upgrade hook (Deployments first)', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec();
    await e2e.installRelease(s);
    await e2e.startGuard();
    expect(await e2e.revision()).toBe(headOf('3.1.0'));
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(op.execPod).toMatchObject({ component: 'api-server', runner: false });
    const reasons = new Set(eventsOf(e2e, s.namespace).map((ev) => ev.reason));
    for (const r of [
      'DowngradeOpened',
      'DowngradeRunning',
      'DowngradeSucceeded',
      'SchemaVerified',
      'Draining',
      'Drained',
      'Released',
    ])
      expect(reasons, r).toContain(r);
    // Every call of the guard was allowed by the real authorizer (RBAC from the install manifests).
    expect(e2e.guards[0]!.logs.filter((l) => /forbidden/i.test(l))).toEqual([]);
  });

  it('negative control: the same downgrade without the webhook records violations', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec();
    await e2e.installRelease(s);
    await withoutWorkerMigrationWait(e2e, s);
    // No guard: nothing holds the rollout. The 3.0.2 worker (no migration wait) starts on the 3.1.0 schema.
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    await waitFor('a violation recorded', () => e2e!.sim.runtime.violations.list().length > 0, 60_000, 100);
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
    e2e = await startRealE2E(cluster!);
    const s = spec();
    await e2e.installRelease(s);
    await withoutWorkerMigrationWait(e2e, s);
    await e2e.startGuard();
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
  });

  it('kubectl set image on one Deployment: the others stay drained until their own update', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec();
    await e2e.installRelease(s);
    await e2e.startGuard();
    await setImage(e2e, 'Deployment', 'airflow', 'airflow-api-server', '3.0.2');
    const op = await waitFor(
      'operation done',
      () => e2e!.operation('airflow', 'airflow')?.phase === 'done' && e2e!.operation('airflow', 'airflow'),
      60_000,
      100,
    );
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(await e2e.revision()).toBe(headOf('3.0.2'));
    const scheduler = e2e.workload('Deployment', 'airflow', 'airflow-scheduler') as { spec: { replicas: number } };
    expect(scheduler.spec.replicas).toBe(0);
    for (const c of ['scheduler', 'dag-processor', 'triggerer', 'worker'])
      await setImage(e2e, 'Deployment', 'airflow', `airflow-${c}`, '3.0.2');
    await waitFor(
      'release running 3.0.2',
      () => releaseReady(e2e!.sim, { ...s, version: '3.0.2', cronJobs: false }),
      60_000,
      100,
    );
    await e2e.sim.runtime.sweep();
    expect(e2e.sim.runtime.violations.list()).toEqual([]);
  });
});
