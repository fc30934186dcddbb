// When the downgrade goes wrong: the exec fails, stops halfway, or the guard dies mid-operation.
// The release must stay held on the version that matches the schema, and finish once retried.
import { afterEach, describe, expect, it } from 'vitest';
import { retryOperation } from '../../src/coordinator/operator-actions.js';
import { isMigrationRunning } from '../../src/db/migration-lock.js';
import {
  FULL_SEQUENCE,
  eventsOf,
  expectDowngraded,
  expectNoViolations,
  guardAnnotations,
  headOf,
  killNow,
  releaseReady,
  releaseWorkloads,
  restartGuard,
  startE2E,
  stepSequence,
  upgradeRelease,
  waitFor,
  whenOperation,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

let e2e: E2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

const spec = (name: string): ReleaseSpec => ({
  release: name,
  namespace: name,
  version: '3.1.0',
  replicas: { scheduler: 2 },
});

/** Held on 3.1.0: every workload held (not drained), all 3.1.0 pods serving, schema untouched. */
async function expectHeldServing(e: E2E, s: ReleaseSpec): Promise<void> {
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

describe('the downgrade exec fails', () => {
  it('exits non-zero: held on 3.1.0 and serving, with the reason; `retry` then completes it', async () => {
    e2e = await startE2E();
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
      30_000,
    );
    expect(held.heldFrom).toBe('downgrade');
    expect(held.heldReason).toMatch(/downgrade failed in pod .*deadlock detected.*schema is unchanged at 3\.1\.0/);
    await expectHeldServing(e2e, s);
    const heldEvents = eventsOf(e2e, s.namespace).filter((e) => e.reason === 'DowngradeHeld');
    expect(heldEvents.length).toBeGreaterThan(0);
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
      e2e = await startE2E();
      const s = spec('half');
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
        () => e2e!.operation(s.namespace, s.release)?.phase === 'held' && e2e!.operation(s.namespace, s.release),
        30_000,
      );
      expect(held.heldReason).toMatch(
        /downgrade stopped at revision fe199e1abd77 .*migrated forward again to cc92b33c6709/,
      );
      expect(stepSequence(held)).toEqual(['open', 'confirm', 'downgrade', 'roll-forward', 'hold']);
      expect(held.steps.map((st) => st.outcome).slice(2)).toEqual(['failed', 'ok', 'held']);
      await expectHeldServing(e2e, s);
      // Same pod for both commands: the roll-forward ran where the downgrade stopped.
      const reasons = eventsOf(e2e, s.namespace).map((e) => e.reason);
      expect(reasons).toContain('RollForwardSucceeded');
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
  const boundaries: Array<[string, (e: E2E, s: ReleaseSpec) => Promise<unknown>]> = [
    [
      'right after the operation is opened',
      (e, s) =>
        whenOperation(
          e,
          s.namespace,
          s.release,
          (op) => op.phase === 'confirm',
          () => killNow(e.guards[0]!),
        ),
    ],
    ['during the downgrade exec', (e) => killWhileMigrating(e)],
    [
      'at the start of the drain',
      (e, s) =>
        whenOperation(
          e,
          s.namespace,
          s.release,
          (op) => op.phase === 'drain',
          () => killNow(e.guards[0]!),
        ),
    ],
    [
      'at the start of the release',
      (e, s) =>
        whenOperation(
          e,
          s.namespace,
          s.release,
          (op) => op.phase === 'release',
          () => killNow(e.guards[0]!),
        ),
    ],
  ];

  it.each(boundaries)('%s: the restarted guard completes it with zero violations', async (_name, killAt) => {
    // Slower migrations so the kill lands inside the exec.
    e2e = await startE2E({ stepDurationMs: 150 });
    const s = spec('kill');
    await e2e.installRelease(s);
    const guard = await e2e.startGuard();
    const restarted = killAt(e2e, s).then(() => restartGuard(e2e!, guard));
    // While the guard is down its webhook refuses changes; the sync retries them.
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none', retryUnreachableWebhook: true });
    await restarted;
    const done = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
  });
});

/** Kills the guard while the downgrade holds Airflow's migration lock (the exec is running). */
async function killWhileMigrating(e: E2E): Promise<void> {
  await waitFor('the downgrade running', () => isMigrationRunning(e.db.url), 30_000, 5);
  killNow(e.guards[0]!);
}
