// Scenario bodies of a return to the from-version (issue 17 item 2) that run on either cluster: the
// simulated one (returns.test.ts) and the real control plane (test/cluster/scenarios.test.ts), each
// with its own E2E started by its backend.
import pg from 'pg';
import { expect } from 'vitest';
import type { OperationState } from '../../src/coordinator/operation.js';
import { ANNOTATIONS } from '../../src/core/config.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import {
  eventsIncluding,
  eventsOf,
  expectNoViolations,
  guardAnnotations,
  headOf,
  onDowngradeWalk,
  releaseReady,
  releaseWorkloads,
  waitFor,
  whenOperation,
  type ClusterUnderTest,
  type E2E,
  type E2EOptions,
  type ReleaseSpec,
} from './harness.js';
import { imitatedHelm } from './helm-imitation.js';
import type { StartE2E } from './scenarios/start.js';

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

// ---- the return at each phase of the operation, by each method ----

export const RETURN_METHODS = ['helm rollback', 'helm upgrade --atomic', 'helm upgrade'] as const;
/**
 * How the release goes back to FROM: `helm rollback` (FROM's manifests, no hooks), `helm upgrade
 * --atomic` timing out (Helm 4: --rollback-on-failure; the same rollback, when the timeout passes),
 * or a plain `helm upgrade` to FROM (its migration Job as a post-upgrade hook).
 */
export type ReturnMethod = (typeof RETURN_METHODS)[number];

type Order = 'downgrade-first' | 'drain-first';

/** The release of a return scenario: two schedulers, so the drain has old pods to wait for. */
export function returnSpec(name: string): ReleaseSpec {
  return { release: name, namespace: name, version: FROM, replicas: { scheduler: 2 } };
}

/**
 * The downgrade to TO (its migration Job as `hook`; --atomic applies none, the guard holds it), then
 * the return to FROM by `method` once `when()` resolves.
 */
async function downgradeThenReturn(
  e: E2E<ClusterUnderTest>,
  s: ReleaseSpec,
  method: ReturnMethod,
  when: () => Promise<unknown>,
  hook: 'none' | 'post-upgrade' = 'none',
): Promise<void> {
  const helm = imitatedHelm(e);
  if (method === 'helm upgrade --atomic') return helm.atomicUpgrade(s, TO, FROM, when());
  await helm.upgrade(s, TO, { hook });
  await when();
  if (method === 'helm rollback') await helm.rollback(s, FROM);
  else await helm.upgrade(s, FROM, { hook: 'post-upgrade' });
}

/** The operation once it ended (any terminal phase, or held). */
function operationEnded(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<OperationState> {
  return waitFor(
    'operation ended',
    () => {
      const o = e.operation(s.namespace, s.release);
      return o && ['done', 'returned', 'cancelled', 'held', 'aborted'].includes(o.phase) && o;
    },
    60_000,
    100,
  );
}

/**
 * Back at FROM with `phase` and `sequence`. A plain `helm upgrade` brings FROM's migration Job,
 * which may move the schema forward before the guard does (then the guard has nothing to undo and
 * cancels): its phase and steps are whichever came first, the end state the same.
 */
async function expectReturnedBy(
  e: E2E<ClusterUnderTest>,
  s: ReleaseSpec,
  method: ReturnMethod,
  phase: OperationState['phase'],
  sequence?: string[],
): Promise<OperationState> {
  if (method === 'helm upgrade') {
    const ended = await operationEnded(e, s);
    expect(['returned', 'cancelled'], `${ended.phase}: ${ended.heldReason ?? ''}`).toContain(ended.phase);
    return expectBackAtFrom(e, s, ended.phase);
  }
  const op = await expectBackAtFrom(e, s, phase);
  if (sequence) expect(steps(op)).toEqual(sequence);
  return op;
}

/** One row of the return table (the closing note of issue 17): where, how, what became of it. */
function printRow(at: string, method: ReturnMethod, order: Order, op: OperationState, began: number): void {
  console.log(
    `[return] ${at} | ${method} | ${order} | ${op.phase} | ${steps(op).join(' ')} | ${Date.now() - began} ms`,
  );
}

function logged(e: E2E<ClusterUnderTest>, text: string): boolean {
  return e.guards.some((g) => g.logs.some((l) => l.includes(text)));
}

function oldScheduler(pod: KubeObject): boolean {
  return pod.metadata.labels?.component === 'scheduler' && JSON.stringify(pod.spec).includes(`apache/airflow:${FROM}`);
}

/** Old scheduler pods stay Terminating (and running) while `stuck.on`: the drain cannot finish meanwhile. */
function stuckOldSchedulers(): { on: boolean; predicate: (pod: KubeObject) => boolean } {
  const stuck = { on: false, predicate: (pod: KubeObject) => stuck.on && oldScheduler(pod) };
  return stuck;
}

/** The release at FROM on a cluster started with `options`, with a guard (`guardArgs` added to serve). */
async function guardedRelease(
  start: StartE2E,
  name: string,
  options: E2EOptions = {},
  guardArgs: string[] = [],
): Promise<{ e: E2E<ClusterUnderTest>; s: ReleaseSpec }> {
  const e = await start(options);
  const s = returnSpec(name);
  await e.installRelease(s);
  await e.startGuard(undefined, guardArgs);
  return { e, s };
}

/** The metadata Secret points at a closed port until the returned function puts it back. */
async function breakMetadataConnection(e: E2E<ClusterUnderTest>, s: ReleaseSpec): Promise<() => Promise<void>> {
  const secret = `${s.release}-metadata`;
  const encode = (url: string): string => Buffer.from(url).toString('base64');
  const set = (url: string): Promise<unknown> =>
    e.admin.patch('Secret', s.namespace, secret, [{ op: 'replace', path: '/data/connection', value: encode(url) }]);
  await set(e.db.url.replace(/:(\d+)\//, ':1/'));
  return async () => {
    await set(e.db.url);
  };
}

/**
 * The row of `alembic_version` locked by another session: a migration step (an UPDATE of it) waits
 * until `release()`. Reads go on. Holds the exec inside its walk for as long as the test needs,
 * whatever the migration steps take, on either cluster (both use the test's database server).
 */
async function lockSchemaRow(e: E2E<ClusterUnderTest>): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: e.db.url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('BEGIN');
  await client.query('SELECT version_num FROM alembic_version FOR SHARE');
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= client
        .query('COMMIT')
        .then(() => undefined)
        .finally(() => client.end().catch(() => undefined))),
  };
}

/** The webhook admitted the return: no workload of the release is held any more, some marked returned. */
function returnAdmitted(e: E2E<ClusterUnderTest>, s: ReleaseSpec): boolean {
  const objects = [
    ...releaseWorkloads(s)
      .filter((w) => w.component !== 'statsd')
      .map((w) => e.workload(w.kind, s.namespace, w.name) as KubeObject | undefined),
    e.workload('CronJob', s.namespace, `${s.release}-database-cleanup`) as KubeObject | undefined,
  ];
  const annotations = objects.map((o) => o?.metadata.annotations ?? {});
  return (
    annotations.every((a) => a[ANNOTATIONS.hold] === undefined) &&
    annotations.some((a) => a[ANNOTATIONS.returned] !== undefined)
  );
}

/** Every DB-touching workload of the release at 0 while the operation is in `phase`. */
function drainedIn(e: E2E<ClusterUnderTest>, s: ReleaseSpec, phase: OperationState['phase']): boolean {
  if (e.operation(s.namespace, s.release)?.phase !== phase) return false;
  return releaseWorkloads(s)
    .filter((w) => w.component !== 'statsd')
    .every((w) => (e.workload(w.kind, s.namespace, w.name) as WorkloadShape).spec.replicas === 0);
}

/**
 * Before the exec (confirm cannot read the database): the wait shows at once as a stall (17.3), in
 * the record and as a Warning Event; the return is a cancel, the schema never moved.
 */
export async function returnBeforeExec(start: StartE2E, name: string, method: ReturnMethod): Promise<void> {
  const began = Date.now();
  const { e, s } = await guardedRelease(start, name, {}, ['--stall-timeout-ms', '600000']);
  const repair = await breakMetadataConnection(e, s);
  // Repaired once the operation ended: a plain upgrade waits for its migration Job, which needs the database.
  const ended = operationEnded(e, s).then(async (op) => {
    await repair();
    return op;
  });
  const returned = downgradeThenReturn(e, s, method, async () => {
    const stalled = await waitFor(
      'stall recorded',
      () => e.operation(s.namespace, s.release)?.stalled && e.operation(s.namespace, s.release),
      30_000,
      50,
    );
    expect(stalled.phase).toBe('confirm');
    expect(stalled.stalled?.reason).toMatch(/cannot read the metadata database/);
    await waitFor(
      'DowngradeStalled event',
      () => eventsOf(e, s.namespace).some((ev) => ev.reason === 'DowngradeStalled' && ev.type === 'Warning'),
      10_000,
    );
  });
  const [first] = await Promise.all([ended, returned]);
  const op = await expectBackAtFrom(e, s, 'cancelled');
  expect(op.id).toBe(first.id);
  expect(steps(op)).toEqual(['open', 'cancel']);
  expect(op.stalled).toBeUndefined();
  printRow('before the exec', method, 'downgrade-first', op, began);
}

/**
 * During the exec (downgrade-first: in a pod of the release; drain-first: in the runner pod): the
 * exec is held inside its walk until the webhook admitted the return, then runs to its end; the
 * guard migrates the schema forward again and gives the drained workloads back.
 */
export async function returnDuringExec(
  start: StartE2E,
  name: string,
  method: ReturnMethod,
  order: Order = 'downgrade-first',
): Promise<void> {
  const began = Date.now();
  const { e, s } = await guardedRelease(start, name, { order });
  const gate = await lockSchemaRow(e);
  let walked = false;
  const undo = onDowngradeWalk(e, () => {
    walked = true;
  });
  const walking = waitFor('the downgrade exec walking the migrations', () => walked, 60_000, 20);
  try {
    // A plain upgrade waits for its hook Job, which waits for the exec: the gate opens meanwhile.
    const opened = walking
      .then(() => waitFor('the return admitted', () => returnAdmitted(e, s), 60_000, 20))
      .finally(() => gate.release());
    await Promise.all([downgradeThenReturn(e, s, method, () => walking), opened]);
  } finally {
    undo();
    await gate.release();
  }
  const op = await expectReturnedBy(
    e,
    s,
    method,
    'returned',
    order === 'drain-first'
      ? ['open', 'confirm', 'quiesce', 'downgrade', 'forward', 'forward', 'restore']
      : ['open', 'confirm', 'downgrade', 'forward', 'forward', 'restore'],
  );
  printRow('during the exec', method, order, op, began);
  if (method === 'helm upgrade') return;
  await eventsIncluding(e, s.namespace, [
    'Warning DowngradeReturned',
    'Normal MigrateForwardSucceeded',
    'Warning ReturnedToFromVersion',
  ]);
  expect(logged(e, 'operation forward start')).toBe(true);
  if (order === 'drain-first') {
    expect(op.execPod?.runner).toBe(true);
    expect(e.sim.runtime.violations.exposures()).toEqual([]);
  }
}

/**
 * After verify, as the drain starts (downgrade-first: old scheduler pods stuck Terminating, so the
 * drain cannot finish; drain-first: the return lands in the drain or in the release, which waits
 * for it): forward again, drained workloads restored, never released onto the target.
 */
export async function returnAfterVerify(
  start: StartE2E,
  name: string,
  method: ReturnMethod,
  order: Order = 'downgrade-first',
): Promise<void> {
  const began = Date.now();
  const stuck = stuckOldSchedulers();
  const { e, s } = await guardedRelease(
    start,
    name,
    order === 'drain-first' ? { order } : { order, stuckTerminating: stuck.predicate },
  );
  stuck.on = true;
  const atDrain = whenOperation(e, s.namespace, s.release, (op) => op.phase === 'drain');
  await downgradeThenReturn(e, s, method, () => atDrain);
  if (order === 'downgrade-first') {
    const op = await expectReturnedBy(e, s, method, 'returned', [
      'open',
      'confirm',
      'downgrade',
      'verify',
      'forward',
      'forward',
      'restore',
    ]);
    printRow('after verify', method, order, op, began);
    return;
  }
  // drain-first: the return lands in the drain or in the release, which waits for it.
  const op = await expectReturnedBy(e, s, method, 'returned');
  printRow('after verify', method, order, op, began);
  if (method === 'helm upgrade') return;
  const sequence = steps(op);
  expect(sequence.slice(0, 5)).toEqual(['open', 'confirm', 'quiesce', 'downgrade', 'verify']);
  expect(sequence.slice(-3)).toEqual(['forward', 'forward', 'restore']);
  // Never released onto the target while part of the release was going back.
  expect(sequence).not.toContain('release');
}

/**
 * During the drain: every workload at 0, old scheduler pods still Terminating. downgrade-first:
 * forward again, replicas back; drain-first (the drain before the downgrade, `quiesce`): the schema
 * never moved, nothing to migrate, replicas back.
 */
export async function returnDuringDrain(
  start: StartE2E,
  name: string,
  method: ReturnMethod,
  order: Order = 'downgrade-first',
): Promise<void> {
  const began = Date.now();
  const stuck = stuckOldSchedulers();
  const { e, s } = await guardedRelease(start, name, { order, stuckTerminating: stuck.predicate });
  stuck.on = true;
  const phase = order === 'drain-first' ? 'quiesce' : 'drain';
  await downgradeThenReturn(e, s, method, () =>
    waitFor(`every workload drained (${phase})`, () => drainedIn(e, s, phase), 30_000, 20),
  );
  const op = await expectReturnedBy(
    e,
    s,
    method,
    'returned',
    order === 'drain-first'
      ? ['open', 'confirm', 'forward', 'forward', 'restore']
      : ['open', 'confirm', 'downgrade', 'verify', 'forward', 'forward', 'restore'],
  );
  printRow('during the drain', method, order, op, began);
  // The schema never moved in drain-first: no exec.
  if (order === 'drain-first' && method !== 'helm upgrade') expect(logged(e, 'operation forward start')).toBe(false);
}

// After release (the operation is `done`): `helm rollback` applies the from-version's manifests with
// no hooks, so no migration Job comes. The guard holds the return, opens a new operation and moves
// the schema forward itself; without it the from-version pods would wait for migrations forever.
/** A downgrade to TO done, then the return to FROM by `method`: a return operation, forward then restore. */
export async function returnAfterRelease(
  e: E2E<ClusterUnderTest>,
  s: ReleaseSpec,
  method: ReturnMethod = 'helm rollback',
  /** The --order `e` was started with (for the table row). */
  order: Order = 'downgrade-first',
): Promise<OperationState> {
  const began = Date.now();
  await e.installRelease(s);
  await e.startGuard();
  let done: OperationState | undefined;
  const released = async (): Promise<void> => {
    done = await waitFor(
      'downgrade done',
      () => e.operation(s.namespace, s.release)?.phase === 'done' && e.operation(s.namespace, s.release),
      60_000,
      100,
    );
    await waitFor(`release running ${TO}`, () => releaseReady(e.sim, { ...s, version: TO }), 60_000, 100);
    e.sim.runtime.violations.clear();
  };
  await downgradeThenReturn(e, s, method, released, 'post-upgrade');
  const first = done!;
  const op = await waitFor(
    'return operation ended',
    () => {
      const o = e.operation(s.namespace, s.release);
      return o && o.id !== first.id && ['done', 'returned', 'cancelled', 'held', 'aborted'].includes(o.phase) && o;
    },
    60_000,
    100,
  );
  expect(op.phase, `${op.phase}: ${op.heldReason ?? ''}`).toBe('returned');
  expect(op.admittedAs).toBe(first.id);
  expect([op.fromVersion, op.toVersion]).toEqual([FROM, TO]);
  // A plain upgrade's migration Job may move the schema forward first: then the guard's forward has nothing to run.
  if (method !== 'helm upgrade') expect(steps(op)).toEqual(['open', 'confirm', 'forward', 'restore']);
  await expectBackAtFrom(e, s, 'returned');
  await eventsIncluding(e, s.namespace, [
    'Warning ReturnAfterDowngrade',
    ...(method !== 'helm upgrade' ? ['Normal MigrateForwardSucceeded'] : []),
    'Warning ReturnedToFromVersion',
  ]);
  // The target's pods are drained before the schema moves forward under them, in either order.
  expect(e.sim.runtime.violations.exposures()).toEqual([]);
  printRow('after release', method, order, op, began);
  return op;
}
