// Scenario bodies of a return to the from-version (issue 17 item 2) that run on either cluster: the
// simulated one (returns.test.ts) and the real control plane (test/cluster/scenarios.test.ts), each
// with its own E2E started by its backend.
import { expect } from 'vitest';
import type { OperationState } from '../../src/coordinator/operation.js';
import {
  eventsOf,
  expectNoViolations,
  guardAnnotations,
  headOf,
  releaseReady,
  releaseWorkloads,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from './harness.js';
import { imitatedHelm } from './helm-imitation.js';

export const FROM = '3.1.0';
export const TO = '3.0.2';

export interface WorkloadShape {
  spec: { paused?: boolean; replicas?: number; suspend?: boolean };
}

/** The release runs FROM again as its last applied spec says, with nothing of the guard left on it. */
export async function expectBackAtFrom(
  e: E2E<ClusterUnderTest>,
  s: ReleaseSpec,
  phase: OperationState['phase'],
): Promise<OperationState> {
  const op = await waitFor(
    `operation ${phase}`,
    () => {
      const o = e.operation(s.namespace, s.release);
      return o && ['done', 'returned', 'cancelled', 'held', 'aborted'].includes(o.phase) && o;
    },
    60_000,
    100,
  );
  expect(op.phase, `${op.phase}: ${op.heldReason ?? ''}`).toBe(phase);
  await waitFor(`release running ${FROM}`, () => releaseReady(e.sim, s), 60_000, 100);
  expect(await e.revision()).toBe(headOf(FROM));
  for (const w of releaseWorkloads(s)) {
    const obj = e.workload(w.kind, s.namespace, w.name) as WorkloadShape;
    expect(obj.spec.replicas, `${w.name} replicas`).toBe(w.replicas);
    expect(obj.spec.paused ?? false, `${w.name} paused`).toBe(false);
    expect(guardAnnotations(obj), `${w.name} guard annotations`).toEqual([]);
  }
  const cron = e.workload('CronJob', s.namespace, `${s.release}-database-cleanup`) as WorkloadShape;
  expect(cron.spec.suspend ?? false).toBe(false);
  expect(guardAnnotations(cron)).toEqual([]);
  await expectNoViolations(e);
  return op;
}

/** The steps an operation recorded, without the waits. */
export function steps(op: OperationState): string[] {
  return op.steps.filter((s) => s.outcome !== 'waiting').map((s) => s.step);
}

// After release (the operation is `done`): `helm rollback` applies the from-version's manifests with
// no hooks, so no migration Job comes. The guard holds the return, opens a new operation and moves
// the schema forward itself; without it the from-version pods would wait for migrations forever.
/** A downgrade to TO done, then `helm rollback` to FROM: a return operation, forward then restore. */
export async function returnAfterRelease(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<OperationState> {
  await e.installRelease(s);
  await e.startGuard();
  const helm = imitatedHelm(e);
  await helm.upgrade(s, TO, { hook: 'post-upgrade' });
  const done = await waitFor(
    'downgrade done',
    () => e.operation(s.namespace, s.release)?.phase === 'done' && e.operation(s.namespace, s.release),
    60_000,
    100,
  );
  await waitFor(`release running ${TO}`, () => releaseReady(e.sim, { ...s, version: TO }), 60_000, 100);
  e.sim.runtime.violations.clear();
  await helm.rollback(s, FROM);
  const op = await waitFor(
    'return operation ended',
    () => {
      const o = e.operation(s.namespace, s.release);
      return o && o.id !== done.id && ['done', 'returned', 'cancelled', 'held', 'aborted'].includes(o.phase) && o;
    },
    60_000,
    100,
  );
  expect(op.phase, `${op.phase}: ${op.heldReason ?? ''}`).toBe('returned');
  expect(op.admittedAs).toBe(done.id);
  expect([op.fromVersion, op.toVersion]).toEqual([FROM, TO]);
  expect(steps(op)).toEqual(['open', 'confirm', 'forward', 'restore']);
  await expectBackAtFrom(e, s, 'returned');
  const reasons = eventsOf(e, s.namespace).map((ev) => `${ev.type} ${ev.reason}`);
  expect(reasons).toContain('Warning ReturnAfterDowngrade');
  expect(reasons).toContain('Normal MigrateForwardSucceeded');
  expect(reasons).toContain('Warning ReturnedToFromVersion');
  // The target's pods are drained before the schema moves forward under them, in either order.
  expect(e.sim.runtime.violations.exposures()).toEqual([]);
  return op;
}
