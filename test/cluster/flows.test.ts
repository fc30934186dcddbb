// Deploy-tool flows and a guard killed inside the downgrade exec, on the real control plane, with the
// assertions of their simulated versions (test/e2e/downgrade.test.ts, scenarios-flows.test.ts,
// scenarios-failures.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AirflowRuntime } from '../../src/sim/airflow/runtime.js';
import {
  FULL_SEQUENCE,
  expectDowngraded,
  headOf,
  killNow,
  restartGuard,
  stepSequence,
  upgradeRelease,
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

describe('deploy-tool flows', () => {
  it('Helm upgrade with the migration Job as a pre-upgrade hook (Job first)', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = { release: 'pre', namespace: 'pre', version: '3.1.0', replicas: { scheduler: 2 } };
    await e2e.installRelease(s);
    await e2e.startGuard();
    const upgrade = await upgradeRelease(e2e, s, '3.0.2', { hook: 'pre-upgrade' });
    // Helm waits on the held Job until its --timeout (5 min by default): the operation must release it well before.
    console.log(`pre-upgrade hook Job: created -> complete in ${upgrade.hookJobMs} ms`);
    expect(upgrade.hookJobMs).toBeLessThan(30_000);
    // The Deployments arrive after the operation is done, drained at 0: each update is admitted held
    // at 0 replicas, whatever count Helm sends, and the coordinator restores it.
    for (const a of upgrade.applied) {
      expect(a.wasDrained, a.name).toBe(true);
      expect(a.admittedReplicas, a.name).toBe(0);
    }
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(op.openedBy).toBe('Job/pre-run-airflow-migrations');
  });

  it('Argo-style sync: one workload at a time, 300 ms apart; drained workloads stay at 0 whatever replicas the sync sends', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = { release: 'argo', namespace: 'argo', version: '3.1.0', replicas: { scheduler: 2, worker: 2 } };
    await e2e.installRelease(s);
    await e2e.startGuard();
    const sync = await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade', pauseMs: 300 });
    const drainedUpdates = sync.applied.filter((a) => a.wasDrained);
    expect(drainedUpdates.length).toBeGreaterThan(0);
    for (const a of drainedUpdates) expect(a.admittedReplicas, `${a.name} admitted replicas`).toBe(0);
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
  });
});

/**
 * Calls `then` once, synchronously, when the simulated Airflow of the node agent starts walking the
 * migrations of an `airflow db downgrade` (the exec is running and holds the migration lock): a kill
 * point that does not depend on how long the migration steps take.
 */
function onDowngradeWalk(runtime: AirflowRuntime, then: () => void): () => void {
  const faults = runtime.faults;
  const take = faults.take;
  const restore = (): void => {
    faults.take = take;
  };
  faults.take = ((target, kinds) => {
    if (kinds.includes('exec-halfway') && target.argv?.join(' ').includes('db downgrade')) {
      restore();
      then();
    }
    return take(target, kinds);
  }) as typeof take;
  return restore;
}

describe('the guard is killed (SIGKILL) and restarted mid-operation', () => {
  it('during the downgrade exec: the restarted guard completes it with zero violations', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = { release: 'kill-exec', namespace: 'kill-exec', version: '3.1.0', replicas: { scheduler: 2 } };
    await e2e.installRelease(s);
    const guard = await e2e.startGuard();
    let killed: () => void = () => undefined;
    const inExec = new Promise<void>((resolve) => (killed = resolve));
    const restore = onDowngradeWalk(cluster!.runtime, () => {
      killNow(e2e!.guards[0]!);
      killed();
    });
    try {
      const restarted = inExec.then(() => restartGuard(e2e!, guard));
      await upgradeRelease(e2e, s, '3.0.2', { hook: 'none', retryUnreachableWebhook: true });
      await restarted;
    } finally {
      restore();
    }
    const done = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
    expect(await e2e.revision()).toBe(headOf('3.0.2'));
  });
});
