// Deploy-tool flows beyond a plain Helm upgrade: an Argo-style sync with pauses between workloads,
// and a release with no pod of the newer version running (the downgrade runs in a runner pod). Run
// on the simulated cluster (test/e2e/scenarios-flows.test.ts) and the real control plane
// (test/cluster/flows.test.ts).
import { describe, expect, it } from 'vitest';
import { RUNNER_LABEL } from '../../../src/coordinator/release-view.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import {
  FULL_SEQUENCE,
  eventsOf,
  expectDowngraded,
  podsOf,
  releaseSpec,
  releaseWorkloads,
  stepSequence,
  upgradeRelease,
  waitFor,
  type ReleaseSpec,
} from '../harness.js';
import { startedPerTest, type StartE2E } from './start.js';

export function flowScenarios(startOn: StartE2E): void {
  describe('deploy-tool flows', () => {
    const start = startedPerTest(startOn);

    it('Argo-style sync: one workload at a time, 300 ms apart; drained workloads stay at 0 whatever replicas the sync sends', async () => {
      const e2e = await start();
      const s: ReleaseSpec = { ...releaseSpec('argo'), replicas: { scheduler: 2, worker: 2 } };
      await e2e.installRelease(s);
      // The guard leaves a workload the sync has not applied yet alone for --rollout-settle-ms
      // (default 5 s, longer than this sync): a short one makes it drain them while the sync goes on.
      await e2e.startGuard(undefined, ['--rollout-settle-ms', '500']);
      const sync = await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade', pauseMs: 300 });
      // The operation drained the rest of the release while the sync paused between workloads;
      // every update of a drained workload was admitted at 0 replicas (the count is restored later).
      const drainedUpdates = sync.applied.filter((a) => a.wasDrained);
      expect(drainedUpdates.length).toBeGreaterThan(0);
      for (const a of drainedUpdates) expect(a.admittedReplicas, `${a.name} admitted replicas`).toBe(0);
      const op = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    });

    it('no pod of 3.1.0 running: the downgrade runs in a runner pod made from the 3.1.0 template, which is removed', async () => {
      const e2e = await start();
      const s = releaseSpec('idle');
      await e2e.installRelease(s);
      await e2e.startGuard();
      // Maintenance: everything scaled to 0 before the downgrade.
      for (const w of releaseWorkloads(s)) {
        if (w.component !== 'statsd')
          await e2e.admin.patch(w.kind as 'Deployment', s.namespace, w.name, [
            { op: 'replace', path: '/spec/replicas', value: 0 },
          ]);
      }
      await waitFor(
        'no Airflow pod left',
        () => podsOf(e2e.sim, s.namespace, s.release).every((p) => p.metadata.labels?.component === 'statsd'),
        60_000,
      );
      const created: string[] = [];
      const stopWatching = e2e.sim.store.watch(RESOURCES.pods, s.namespace, undefined, (event) => {
        if (event.type === 'ADDED' && event.object.metadata.labels?.[RUNNER_LABEL])
          created.push(event.object.metadata.name);
      });
      try {
        // Helm with the chart's replica counts, migration Job first.
        await upgradeRelease(e2e, s, '3.0.2', { hook: 'pre-upgrade' });
        const op = await expectDowngraded(e2e, s, '3.0.2');
        expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
        expect(op.execPod).toMatchObject({ runner: true });
        expect(created).toEqual([op.execPod!.name]);
        // Deleted before the release; a real kubelet takes the pod's grace period to remove it.
        await waitFor(
          'runner pod removed',
          () => !e2e.sim.store.get(RESOURCES.pods, s.namespace, op.execPod!.name),
          30_000,
        );
        expect(eventsOf(e2e, s.namespace).some((e) => e.reason === 'RunnerPodStarted')).toBe(true);
      } finally {
        stopWatching();
      }
    });
  });
}
