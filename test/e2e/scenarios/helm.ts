// A downgrade by real Helm of the fixture chart (test/support/airflow-chart.ts), then `helm rollback`
// to the from-version, on any cluster the harness drives: the simulated one with the installed guard
// (helm-safety.test.ts) and the real control plane (test/cluster/helm.test.ts).
import { expect } from 'vitest';
import type { Helm } from '../../support/helm.js';
import {
  expectDowngraded,
  expectNoViolations,
  FULL_SEQUENCE,
  guardAnnotations,
  headOf,
  releaseReady,
  releaseWorkloads,
  stepSequence,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../harness.js';

export const HELM_FROM = '3.1.0';
export const HELM_TO = '3.0.2';

/** The fixture chart's release `airflow/airflow` as the harness checks it (pgbouncer is no Airflow code). */
export const fixtureRelease = (version: string): ReleaseSpec => ({
  release: 'airflow',
  namespace: 'airflow',
  version,
  components: ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'],
  statefulSets: ['triggerer', 'worker'],
  replicas: { scheduler: 2 },
});

/** `helm install` of the fixture chart at HELM_FROM on the harness's database; returns once it runs. */
export async function helmInstallFixture(e: E2E<ClusterUnderTest>, helm: Helm, chart: string): Promise<void> {
  await helm.ok([
    'install',
    'airflow',
    chart,
    '-n',
    'airflow',
    '--create-namespace',
    '--set',
    `metadataConnection=${e.db.url}`,
    '--set',
    `airflowVersion=${HELM_FROM}`,
    '--timeout',
    '5m',
  ]);
  await waitFor(`release running ${HELM_FROM}`, () => releaseReady(e.sim, fixtureRelease(HELM_FROM)), 90_000, 50);
  expect(await e.revision()).toBe(headOf(HELM_FROM));
}

/** The release runs `version` as the chart sets it: replicas, nothing paused, no guard marks, no violation. */
export async function expectSettledAt(
  e: E2E<ClusterUnderTest>,
  version: string,
  replicas?: ReleaseSpec['replicas'],
): Promise<void> {
  const s = { ...fixtureRelease(version), ...(replicas ? { replicas } : {}) };
  await waitFor(`release running ${version}`, () => releaseReady(e.sim, s), 90_000, 100);
  expect(await e.revision()).toBe(headOf(version));
  for (const w of releaseWorkloads(s)) {
    const obj = e.workload(w.kind, 'airflow', w.name) as { spec: { replicas?: number; paused?: boolean } };
    expect(obj.spec.replicas, `${w.name} replicas`).toBe(w.replicas);
    expect(obj.spec.paused ?? false, `${w.name} paused`).toBe(false);
    expect(guardAnnotations(obj), `${w.name} guard annotations`).toEqual([]);
  }
  await expectNoViolations(e);
}

export interface HelmDowngradeOutcome {
  /** The downgrade's and the return's operations, as one table cell. */
  outcome: string;
  /** From the start of `helm upgrade` to every pod of the release Ready on HELM_TO. */
  upgradeToReadyMs: number;
}

/**
 * The guard's drain, hold and release wrote spec fields (replicas, suspend, paused) and gave their
 * ownership up again (core/managed-fields.ts): a `helm upgrade` changing only the chart's replicas
 * applies (Helm 4 server-side, without --force-conflicts), untouched by the guard.
 */
async function expectReplicasChangeApplies(e: E2E<ClusterUnderTest>, helm: Helm, chart: string): Promise<void> {
  for (const w of releaseWorkloads(fixtureRelease(HELM_FROM))) {
    const fields = (e.workload(w.kind, 'airflow', w.name) as { metadata: { managedFields?: ManagedFieldsEntry[] } })
      .metadata.managedFields;
    const owned = (fields ?? []).filter((m) => m.manager === 'airflow-downgrade-guard' && m.fieldsV1?.['f:spec']);
    expect(owned, `${w.kind}/${w.name}: spec fields owned by the guard: ${JSON.stringify(owned)}`).toEqual([]);
  }
  const upgrade = await helmUpgradeSet(helm, chart, 'replicas.scheduler=3', '2m');
  expect(upgrade.code, upgrade.stderr).toBe(0);
  await expectSettledAt(e, HELM_FROM, { scheduler: 3 });
}

/** `helm upgrade --wait` of the release `airflow/airflow` with its values and one `--set`. */
function helmUpgradeSet(helm: Helm, chart: string, set: string, timeout: string): ReturnType<Helm['run']> {
  return helm.run([
    'upgrade',
    'airflow',
    chart,
    '-n',
    'airflow',
    '--reuse-values',
    '--set',
    set,
    '--wait',
    '--timeout',
    timeout,
  ]);
}

interface ManagedFieldsEntry {
  manager?: string;
  fieldsV1?: Record<string, unknown>;
}

/**
 * From the installed release at HELM_FROM with the guard running: `helm upgrade --wait --timeout 5m`
 * to HELM_TO is held, downgraded, drained and released (full step sequence, zero violations), Helm
 * succeeds; `helm rollback` to revision 1 runs no hooks, so the guard holds that return and runs it
 * as an operation of its own (forward, then restore), and the release settles at HELM_FROM; a later
 * upgrade of only the replicas applies as if the guard had never written them.
 */
export async function helmDowngradeThenRollback(
  e: E2E<ClusterUnderTest>,
  helm: Helm,
  chart: string,
): Promise<HelmDowngradeOutcome> {
  e.sim.runtime.violations.clear();
  const started = Date.now();
  const upgrade = await helmUpgradeSet(helm, chart, `airflowVersion=${HELM_TO}`, '5m');
  expect(upgrade.code, upgrade.stderr).toBe(0);
  await waitFor(`release running ${HELM_TO}`, () => releaseReady(e.sim, fixtureRelease(HELM_TO)), 90_000, 50);
  const upgradeToReadyMs = Date.now() - started;
  const done = await expectDowngraded(e, fixtureRelease(HELM_FROM), HELM_TO);
  expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
  const rollback = await helm.run(['rollback', 'airflow', '1', '-n', 'airflow', '--wait', '--timeout', '2m']);
  expect(rollback.code, rollback.stderr).toBe(0);
  const returned = await waitFor(
    'return operation ended',
    () => {
      const op = e.operation('airflow', 'airflow');
      return op && op.id !== done.id && ['done', 'returned', 'cancelled', 'held', 'aborted'].includes(op.phase) && op;
    },
    90_000,
    100,
  );
  expect(returned.phase, `${returned.phase}: ${returned.heldReason ?? ''}`).toBe('returned');
  await expectSettledAt(e, HELM_FROM);
  await expectReplicasChangeApplies(e, helm, chart);
  return {
    outcome: `upgrade ${done.phase} (${stepSequence(done).join('>')}), rollback ${returned.phase} (${stepSequence(returned).join('>')}), 0 violations`,
    upgradeToReadyMs,
  };
}
