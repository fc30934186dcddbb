// More scenarios of test/e2e on the real control plane, with their assertions: a release with no
// pod of the newer version (runner pod), Airflow 2, StatefulSets, changes the guard leaves alone,
// a failing and a halfway exec, and the guard SIGKILLed mid-operation.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { retryOperation } from '../../src/coordinator/operator-actions.js';
import { RUNNER_LABEL } from '../../src/coordinator/release-view.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import {
  FULL_SEQUENCE,
  eventsOf,
  expectDowngraded,
  expectNoViolations,
  guardAnnotations,
  headOf,
  helmUpgrade,
  killNow,
  podsOf,
  releaseReady,
  releaseWorkloads,
  restartGuard,
  stepSequence,
  upgradeRelease,
  waitFor,
  whenOperation,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../e2e/harness.js';
import { startClusterForE2E, startRealE2E } from './e2e-backend.js';
import type { RealCluster } from './cluster.js';

let cluster: RealCluster | undefined;
let e2e: E2E<ClusterUnderTest> | undefined;

beforeAll(async () => {
  cluster = await startClusterForE2E((line) => console.log(line));
});
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});
afterAll(async () => {
  await cluster?.stop();
});

const spec = (name: string): ReleaseSpec => ({
  release: name,
  namespace: name,
  version: '3.1.0',
  replicas: { scheduler: 2 },
});

describe('release shapes', () => {
  it('no pod of 3.1.0 running: the downgrade runs in a runner pod made from the 3.1.0 template, which is removed', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec('idle');
    await e2e.installRelease(s);
    await e2e.startGuard();
    for (const w of releaseWorkloads(s)) {
      if (w.component !== 'statsd')
        await e2e.admin.patch(w.kind as 'Deployment', s.namespace, w.name, [
          { op: 'replace', path: '/spec/replicas', value: 0 },
        ]);
    }
    await waitFor(
      'no Airflow pod left',
      () => podsOf(e2e!.sim, s.namespace, s.release).every((p) => p.metadata.labels?.component === 'statsd'),
      60_000,
    );
    const created: string[] = [];
    const stopWatching = e2e.sim.store.watch(RESOURCES.pods, s.namespace, undefined, (event) => {
      if (event.type === 'ADDED' && event.object.metadata.labels?.[RUNNER_LABEL])
        created.push(event.object.metadata.name);
    });
    try {
      await upgradeRelease(e2e, s, '3.0.2', { hook: 'pre-upgrade' });
      const op = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(op.execPod).toMatchObject({ runner: true });
      expect(created).toEqual([op.execPod!.name]);
      await waitFor(
        'runner pod removed',
        () => !e2e!.sim.store.get(RESOURCES.pods, s.namespace, op.execPod!.name),
        30_000,
      );
      expect(eventsOf(e2e, s.namespace).some((ev) => ev.reason === 'RunnerPodStarted')).toBe(true);
    } finally {
      stopWatching();
    }
  });

  it('Airflow 2: 2.10.5 -> 2.9.3 with a webserver, the downgrade runs in the webserver pod', async () => {
    e2e = await startRealE2E(cluster!);
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
    e2e = await startRealE2E(cluster!);
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

  it('same head (3.0.2 -> 3.0.1) and forward (3.0.2 -> 3.1.0) pass untouched', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = { release: 'calm', namespace: 'calm', version: '3.0.2', cronJobs: false };
    await e2e.installRelease(s);
    await e2e.startGuard();
    const untouched = async (): Promise<void> => {
      expect(e2e!.operation(s.namespace, s.release)).toBeUndefined();
      for (const w of releaseWorkloads(s))
        expect(guardAnnotations(e2e!.workload(w.kind, s.namespace, w.name)), w.name).toEqual([]);
      await expectNoViolations(e2e!);
    };
    await helmUpgrade(e2e, s, '3.0.1', 'post-upgrade');
    await waitFor('release running 3.0.1', () => releaseReady(e2e!.sim, { ...s, version: '3.0.1' }), 60_000, 100);
    expect(await e2e.revision()).toBe(headOf('3.0.2'));
    await untouched();
    await helmUpgrade(e2e, s, '3.1.0', 'post-upgrade');
    await waitFor('release running 3.1.0', () => releaseReady(e2e!.sim, { ...s, version: '3.1.0' }), 60_000, 100);
    expect(await e2e.revision()).toBe(headOf('3.1.0'));
    // The 3.0.1 pods still running while the Job migrates forward are every forward rollout's business.
    await e2e.sim.runtime.sweep();
    expect(
      e2e.sim.runtime.violations.list().filter((v) => v.imageVersion !== '3.0.1' || v.dbRevision === headOf('3.0.1')),
    ).toEqual([]);
    e2e.sim.runtime.violations.clear();
    await untouched();
  });
});

describe('when the downgrade goes wrong', () => {
  it('the exec exits non-zero: held on 3.1.0 and serving, with the reason; `retry` then completes it', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec('fail');
    await e2e.installRelease(s);
    await e2e.startGuard();
    e2e.sim.runtime.faults.add({
      command: 'db downgrade',
      fault: { kind: 'exec-fail', exitCode: 1, message: 'sqlalchemy.exc.OperationalError: deadlock detected' },
      times: 1,
    });
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const held = await waitFor(
      'operation held',
      () => e2e!.operation(s.namespace, s.release)?.phase === 'held' && e2e!.operation(s.namespace, s.release),
      60_000,
    );
    expect(held.heldFrom).toBe('downgrade');
    expect(held.heldReason).toMatch(/downgrade failed in pod .*deadlock detected.*schema is unchanged at 3\.1\.0/);
    expect(await e2e.revision()).toBe(headOf('3.1.0'));
    expect(releaseReady(e2e.sim, s)).toBe(true);
    await expectNoViolations(e2e);
    await retryOperation(e2e.admin, held, 'operator@example.com');
    const done = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(done)).toEqual(['open', 'confirm', 'downgrade', 'retry', ...FULL_SEQUENCE.slice(1)]);
  });

  it('the exec stops halfway: migrated forward again to the 3.1.0 head in the same pod, held; `retry` completes it', async () => {
    e2e = await startRealE2E(cluster!);
    const s = spec('half');
    await e2e.installRelease(s);
    await e2e.startGuard();
    e2e.sim.runtime.faults.add({
      command: 'db downgrade',
      fault: { kind: 'exec-halfway', steps: 1, then: 'exit' },
      times: 1,
    });
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const held = await waitFor(
      'operation held',
      () => e2e!.operation(s.namespace, s.release)?.phase === 'held' && e2e!.operation(s.namespace, s.release),
      60_000,
    );
    expect(held.heldReason).toMatch(
      /downgrade stopped at revision fe199e1abd77 .*migrated forward again to cc92b33c6709/,
    );
    expect(stepSequence(held)).toEqual(['open', 'confirm', 'downgrade', 'roll-forward', 'hold']);
    expect(held.execPod).toMatchObject({ component: 'api-server', runner: false });
    expect(await e2e.revision()).toBe(headOf('3.1.0'));
    await retryOperation(e2e.admin, held, 'operator@example.com');
    const done = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(done)).toEqual([
      'open',
      'confirm',
      'downgrade',
      'roll-forward',
      'hold',
      'retry',
      ...FULL_SEQUENCE.slice(1),
    ]);
  });

  it.each([
    ['right after the operation is opened', 'confirm'],
    ['at the start of the drain', 'drain'],
  ] as const)(
    'the guard is SIGKILLed %s: the restarted guard completes it with zero violations',
    async (_name, phase) => {
      e2e = await startRealE2E(cluster!);
      const s = spec(`kill-${phase}`);
      await e2e.installRelease(s);
      const guard = await e2e.startGuard();
      const restarted = whenOperation(
        e2e,
        s.namespace,
        s.release,
        (op) => op.phase === phase,
        () => killNow(e2e!.guards[0]!),
      ).then(() => restartGuard(e2e!, guard));
      await upgradeRelease(e2e, s, '3.0.2', { hook: 'none', retryUnreachableWebhook: true });
      await restarted;
      const done = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
    },
  );
});
