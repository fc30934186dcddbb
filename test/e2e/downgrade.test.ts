// The whole product, end to end: simulated cluster + real Postgres + the real guard over TLS.
import { afterEach, describe, expect, it } from 'vitest';
import { headForVersion } from '../../src/core/heads.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import { helmUpgrade, releaseReady, setImage, startE2E, stepSequence, waitFor, type E2E, type ReleaseSpec } from './harness.js';

const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

let e2e: E2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

function spec(overrides: Partial<ReleaseSpec> = {}): ReleaseSpec {
  return { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 }, ...overrides };
}

async function expectDowngraded(e: E2E, s: ReleaseSpec, target: string): Promise<void> {
  const done = await waitFor('operation done', () => e.operation(s.namespace, s.release)?.phase === 'done' && e.operation(s.namespace, s.release), 60_000, 100);
  await waitFor(`release running ${target}`, () => releaseReady(e.sim, { ...s, version: target }), 60_000, 100);
  expect(await e.revision()).toBe(head(target));
  await e.sim.runtime.sweep();
  expect(e.sim.runtime.violations.list()).toEqual([]);
  expect(stepSequence(done)).toEqual(['open', 'confirm', 'downgrade', 'verify', 'drain', 'release']);
}

describe('downgrade 3.1.0 -> 3.0.2 end to end', () => {
  it('Helm upgrade with the migration Job as a post-upgrade hook (Deployments first)', async () => {
    e2e = await startE2E();
    const s = spec();
    await e2e.installRelease(s);
    await e2e.startGuard();
    expect(await e2e.revision()).toBe(head('3.1.0'));
    await helmUpgrade(e2e, s, '3.0.2', 'post-upgrade');
    await expectDowngraded(e2e, s, '3.0.2');
    for (const component of ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker']) {
      const d = e2e.workload('Deployment', 'airflow', `airflow-${component}`) as { spec: { paused?: boolean; replicas: number }; metadata: { annotations?: Record<string, string> } };
      expect(d.spec.paused ?? false).toBe(false);
      expect(d.spec.replicas).toBe(s.replicas?.[component] ?? 1);
      expect(Object.keys(d.metadata.annotations ?? {}).filter((k) => k.startsWith('airflow-downgrade-guard/'))).toEqual([]);
    }
  });

  it('Helm upgrade with the migration Job as a pre-upgrade hook (Job first)', async () => {
    e2e = await startE2E();
    const s = spec();
    await e2e.installRelease(s);
    await e2e.startGuard();
    await helmUpgrade(e2e, s, '3.0.2', 'pre-upgrade');
    await expectDowngraded(e2e, s, '3.0.2');
  });

  it('kubectl set image on one Deployment: the others stay drained until their own update', async () => {
    e2e = await startE2E();
    const s = spec();
    await e2e.installRelease(s);
    await e2e.startGuard();
    await setImage(e2e, 'Deployment', 'airflow', 'airflow-api-server', '3.0.2');
    await waitFor('operation done', () => e2e!.operation('airflow', 'airflow')?.phase === 'done', 60_000, 100);
    expect(await e2e.revision()).toBe(head('3.0.2'));
    const scheduler = e2e.workload('Deployment', 'airflow', 'airflow-scheduler') as { spec: { replicas: number } };
    expect(scheduler.spec.replicas).toBe(0);
    for (const c of ['scheduler', 'dag-processor', 'triggerer', 'worker']) await setImage(e2e, 'Deployment', 'airflow', `airflow-${c}`, '3.0.2');
    await waitFor('release running 3.0.2', () => releaseReady(e2e!.sim, { ...s, version: '3.0.2' }), 60_000, 100);
    await e2e.sim.runtime.sweep();
    expect(e2e.sim.runtime.violations.list()).toEqual([]);
  });
});
