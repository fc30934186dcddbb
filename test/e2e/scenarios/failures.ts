// When the downgrade goes wrong: the exec fails, stops halfway, or the guard dies mid-operation.
// The release must stay held on the version that matches the schema, and finish once retried. Run on
// the simulated cluster (test/e2e/scenarios-failures.test.ts) and the real control plane
// (test/cluster/scenarios.test.ts).
import { describe, expect, it } from 'vitest';
import { retryOperation } from '../../../src/coordinator/operator-actions.js';
import {
  FULL_SEQUENCE,
  eventsIncluding,
  eventsOf,
  expectDowngraded,
  expectNoViolations,
  failNextDowngrade,
  guardAnnotations,
  headOf,
  killNow,
  onDowngradeWalk,
  releaseReady,
  releaseSpec,
  releaseWorkloads,
  restartGuard,
  stepSequence,
  upgradeRelease,
  waitFor,
  whenOperation,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../harness.js';
import { startedPerTest, type StartE2E } from './start.js';

/** Where the guard is SIGKILLed: `killed` resolves once it was; `undo` removes the kill point. */
type KillPoint = (e: E2E<ClusterUnderTest>, s: ReleaseSpec) => { killed: Promise<unknown>; undo(): void };

const atPhase =
  (phase: string): KillPoint =>
  (e, s) => ({
    killed: whenOperation(
      e,
      s.namespace,
      s.release,
      (op) => op.phase === phase,
      () => killNow(e.guards[0]!),
    ),
    undo: () => undefined,
  });

/** Inside the `airflow db downgrade` exec, when it starts walking the migrations. */
const inDowngradeExec: KillPoint = (e) => {
  let undo = (): void => undefined;
  const killed = new Promise<void>((resolve) => {
    undo = onDowngradeWalk(e, () => {
      killNow(e.guards[0]!);
      resolve();
    });
  });
  return { killed, undo };
};

const KILL_POINTS: Array<[string, string, KillPoint]> = [
  ['right after the operation is opened', 'kill-open', atPhase('confirm')],
  ['during the downgrade exec', 'kill-exec', inDowngradeExec],
  ['at the start of the drain', 'kill-drain', atPhase('drain')],
  ['at the start of the release', 'kill-release', atPhase('release')],
];

/** Held on 3.1.0: every workload held (not drained), all 3.1.0 pods serving, schema untouched. */
async function expectHeldServing(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<void> {
  expect(await e.revision()).toBe(headOf('3.1.0'));
  expect(releaseReady(e.sim, s)).toBe(true);
  for (const w of releaseWorkloads(s)) {
    if (w.component === 'statsd') continue;
    const annotations = guardAnnotations(e.workload(w.kind, s.namespace, w.name));
    expect(annotations, w.name).toContain('airflow-downgrade-guard/hold');
    expect(annotations, w.name).not.toContain('airflow-downgrade-guard/drained');
  }
  await expectNoViolations(e);
}

export function failureScenarios(startOn: StartE2E): void {
  describe('the downgrade exec fails', () => {
    const start = startedPerTest(startOn);

    it('exits non-zero: held on 3.1.0 and serving, with the reason; `retry` then completes it', async () => {
      const e2e = await start();
      const s = releaseSpec('fail');
      await e2e.installRelease(s);
      await e2e.startGuard();
      failNextDowngrade(e2e);
      await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });

      const held = await waitFor(
        'operation held',
        () => e2e.operation(s.namespace, s.release)?.phase === 'held' && e2e.operation(s.namespace, s.release),
        60_000,
      );
      expect(held.heldFrom).toBe('downgrade');
      expect(held.heldReason).toMatch(/downgrade failed in pod .*deadlock detected.*schema is unchanged at 3\.1\.0/);
      await expectHeldServing(e2e, s);
      // Events are queued, not awaited, by the coordinator: the Warning follows the record moments later.
      const heldEvents = await waitFor('DowngradeHeld Warning', () => {
        const found = eventsOf(e2e, s.namespace).filter((e) => e.reason === 'DowngradeHeld');
        return found.length > 0 && found;
      });
      expect(heldEvents[0]?.type).toBe('Warning');
      expect(heldEvents[0]?.message).toMatch(/deadlock detected/);

      await retryOperation(e2e.admin, held, 'operator@example.com');
      const done = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(done)).toEqual(['open', 'confirm', 'downgrade', 'retry', ...FULL_SEQUENCE.slice(1)]);
      expect(done.steps.find((st) => st.step === 'downgrade')?.outcome).toBe('held');
    });

    it.each(['exit', 'drop'] as const)(
      'stops halfway (%s): migrated forward again to the 3.1.0 head in the same pod, held and still serving 3.1.0',
      async (then) => {
        const e2e = await start();
        const s = releaseSpec(`half-${then}`);
        await e2e.installRelease(s);
        await e2e.startGuard();
        // 'exit': the command fails with a status; 'drop': the exec connection goes away without one.
        e2e.sim.runtime.faults.add({
          command: 'db downgrade',
          fault: { kind: 'exec-halfway', steps: 1, then },
          times: 1,
        });
        await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });

        const held = await waitFor(
          'operation held',
          () => e2e.operation(s.namespace, s.release)?.phase === 'held' && e2e.operation(s.namespace, s.release),
          60_000,
        );
        expect(held.heldReason).toMatch(
          /downgrade stopped at revision fe199e1abd77 .*migrated forward again to cc92b33c6709/,
        );
        expect(stepSequence(held)).toEqual(['open', 'confirm', 'downgrade', 'roll-forward', 'hold']);
        expect(held.steps.map((st) => st.outcome).slice(2)).toEqual(['failed', 'ok', 'held']);
        await expectHeldServing(e2e, s);
        // Same pod for both commands: the roll-forward ran where the downgrade stopped.
        await eventsIncluding(e2e, s.namespace, ['RollForwardSucceeded']);
        expect(held.execPod).toMatchObject({ component: 'api-server', runner: false });

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
      },
    );
  });

  describe('the guard is killed (SIGKILL) and restarted mid-operation', () => {
    const start = startedPerTest(startOn);

    it.each(KILL_POINTS)(
      '%s: the restarted guard completes it with zero violations',
      async (_name, release, killAt) => {
        const e2e = await start();
        const s = releaseSpec(release);
        await e2e.installRelease(s);
        const guard = await e2e.startGuard();
        const kill = killAt(e2e, s);
        try {
          const restarted = kill.killed.then(() => restartGuard(e2e, guard));
          // While the guard is down its webhook refuses changes; the sync retries them.
          await upgradeRelease(e2e, s, '3.0.2', { hook: 'none', retryUnreachableWebhook: true });
          await restarted;
        } finally {
          kill.undo();
        }
        const done = await expectDowngraded(e2e, s, '3.0.2');
        expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
      },
    );
  });
}
