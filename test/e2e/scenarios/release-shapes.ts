// Downgrades of other release shapes (Airflow 2, StatefulSets) and the changes the guard must leave
// alone. Run on the simulated cluster (test/e2e/scenarios-versions.test.ts) and the real control
// plane (test/cluster/scenarios.test.ts).
import { describe, expect, it } from 'vitest';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import {
  FULL_SEQUENCE,
  expectDowngraded,
  expectNoViolations,
  guardAnnotations,
  headOf,
  helmUpgrade,
  releaseReady,
  releaseWorkloads,
  setImage,
  stepSequence,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../harness.js';
import { startedPerTest, type StartE2E } from './start.js';

export function releaseShapeScenarios(startOn: StartE2E): void {
  describe('downgrades of other release shapes', () => {
    const start = startedPerTest(startOn);

    it('Airflow 2: 2.10.5 -> 2.9.3 with a webserver, the downgrade runs in the webserver pod', async () => {
      const e2e = await start();
      const s: ReleaseSpec = {
        release: 'af2',
        namespace: 'af2',
        version: '2.10.5',
        components: ['webserver', 'scheduler', 'triggerer', 'worker', 'statsd'],
        replicas: { scheduler: 2 },
      };
      await e2e.installRelease(s);
      await e2e.startGuard();
      expect(await e2e.revision()).toBe(headOf('2.10.5'));
      await helmUpgrade(e2e, s, '2.9.3', 'post-upgrade');
      const op = await expectDowngraded(e2e, s, '2.9.3');
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(op.execPod).toMatchObject({ component: 'webserver', runner: false });
    });

    it('StatefulSet workers and triggerer, scheduler as a StatefulSet', async () => {
      const e2e = await start();
      const s: ReleaseSpec = {
        release: 'sts',
        namespace: 'sts',
        version: '3.1.0',
        statefulSets: ['worker', 'triggerer', 'scheduler'],
        replicas: { worker: 2, scheduler: 2 },
      };
      await e2e.installRelease(s);
      await e2e.startGuard();
      await helmUpgrade(e2e, s, '3.0.2', 'post-upgrade');
      const op = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(op.execPod).toMatchObject({ component: 'api-server' });
    });
  });

  describe('changes the guard leaves alone', () => {
    const start = startedPerTest(startOn);

    async function expectUntouched(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<void> {
      expect(e.operation(s.namespace, s.release)).toBeUndefined();
      expect(
        e.sim.store
          .list(RESOURCES.configmaps, s.namespace)
          .items.map((c) => c.metadata.name)
          .filter((n) => n.startsWith('airflow-downgrade-guard')),
      ).toEqual([]);
      for (const w of releaseWorkloads(s))
        expect(guardAnnotations(e.workload(w.kind, s.namespace, w.name)), w.name).toEqual([]);
      await expectNoViolations(e);
    }

    it('same head (3.0.2 -> 3.0.1), forward (3.0.2 -> 3.1.0) and a non-Airflow Deployment pass untouched', async () => {
      const e2e = await start();
      const s: ReleaseSpec = { release: 'calm', namespace: 'calm', version: '3.0.2', cronJobs: false };
      await e2e.installRelease(s);
      await e2e.startGuard();

      // Same schema head: a plain rollout, no operation.
      await helmUpgrade(e2e, s, '3.0.1', 'post-upgrade');
      await waitFor('release running 3.0.1', () => releaseReady(e2e.sim, { ...s, version: '3.0.1' }), 60_000, 100);
      expect(await e2e.revision()).toBe(headOf('3.0.2'));
      await expectUntouched(e2e, s);

      // Forward: the migration Job moves the schema on, the pods follow.
      await helmUpgrade(e2e, s, '3.1.0', 'post-upgrade');
      await waitFor('release running 3.1.0', () => releaseReady(e2e.sim, { ...s, version: '3.1.0' }), 60_000, 100);
      expect(await e2e.revision()).toBe(headOf('3.1.0'));
      // A forward upgrade is Airflow's own business: the 3.0.1 pods still running while the Job
      // migrates forward are what every such rollout does, and the guard must not step in.
      await e2e.sim.runtime.sweep();
      expect(
        e2e.sim.runtime.violations.list().filter((v) => v.imageVersion !== '3.0.1' || v.dbRevision === headOf('3.0.1')),
      ).toEqual([]);
      e2e.sim.runtime.violations.clear();
      await expectUntouched(e2e, s);

      // Not Airflow: an unrelated Deployment in the same namespace, and the release's statsd.
      await e2e.admin.create('Deployment', s.namespace, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'nginx', namespace: s.namespace, labels: { app: 'nginx' } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'nginx' } },
          template: {
            metadata: { labels: { app: 'nginx' } },
            spec: { containers: [{ name: 'nginx', image: 'nginx:1.27' }] },
          },
        },
      });
      await e2e.admin.patch('Deployment', s.namespace, 'nginx', [
        { op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'nginx:1.26' },
      ]);
      await e2e.admin.patch('Deployment', s.namespace, 'calm-statsd', [
        {
          op: 'replace',
          path: '/spec/template/spec/containers/0/image',
          value: 'quay.io/prometheus/statsd-exporter:v0.27.0',
        },
      ]);
      const nginx = e2e.workload('Deployment', s.namespace, 'nginx') as {
        spec: { paused?: boolean; template: { spec: { containers: Array<{ image: string }> } } };
      };
      expect(nginx.spec.paused ?? false).toBe(false);
      expect(nginx.spec.template.spec.containers[0]?.image).toBe('nginx:1.26');
      expect(guardAnnotations(nginx)).toEqual([]);
      expect(guardAnnotations(e2e.workload('Deployment', s.namespace, 'calm-statsd'))).toEqual([]);
      await expectUntouched(e2e, s);
      // An image change on one Deployment alone (kubectl set image, same head) is untouched too.
      await setImage(e2e, 'Deployment', s.namespace, 'calm-scheduler', '3.1.1');
      expect(guardAnnotations(e2e.workload('Deployment', s.namespace, 'calm-scheduler'))).toEqual([]);
      await expectUntouched(e2e, s);
    });
  });
}
