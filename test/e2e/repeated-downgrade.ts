// The repeated downgrade of issue 17 item 1 (3.1.0 -> 3.0.2 -> 3.1.0 -> 3.0.2 -> ... on one release),
// with two guard replicas behind the installed webhook Service: every downgrade is its own
// operation (a fresh id in the record and on every held workload), each one runs every step, and no
// pod ever runs against a schema it does not know. Shared by the CI test (one repetition) and the
// slow suite (ten). Driven by the Helm imitation; to be re-driven by real Helm.
import { expect } from 'vitest';
import { ANNOTATIONS } from '../../src/core/config.js';
import type { OperationState } from '../../src/coordinator/operation.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import {
  FULL_SEQUENCE,
  guardAnnotations,
  headOf,
  releaseReady,
  releaseWorkloads,
  stepSequence,
  waitFor,
  type ReleaseSpec,
} from './harness.js';
import { imitatedHelm } from './helm-imitation.js';
import { kustomize, startInstalledE2E, type InstalledE2E } from './install-harness.js';

const FROM = '3.1.0';
const TO = '3.0.2';

export interface RepeatedRun {
  e2e: InstalledE2E;
  ids: string[];
}

/** Runs `downgrades` downgrades FROM -> TO, each followed (but the last) by the upgrade back. */
export async function runRepeatedDowngrades(
  downgrades: number,
  started: (e: InstalledE2E) => void,
): Promise<RepeatedRun> {
  const e = await startInstalledE2E(kustomize('base'));
  started(e);
  await Promise.all([e.startGuard('airflow-downgrade-guard-a'), e.startGuard('airflow-downgrade-guard-b')]);
  const s: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: FROM, replicas: { scheduler: 2 } };
  await e.installRelease(s);
  const helm = imitatedHelm(e);
  const ids: string[] = [];
  // Every operation id each Deployment was held under, as the store saw it.
  const heldUnder = new Map<string, Set<string>>();
  const stopWatching = e.sim.store.watch(RESOURCES.deployments, s.namespace, undefined, (event) => {
    const id = event.object.metadata.annotations?.[ANNOTATIONS.operation];
    if (!id || !event.object.metadata.annotations?.[ANNOTATIONS.hold]) return;
    const seen = heldUnder.get(event.object.metadata.name) ?? new Set<string>();
    seen.add(id);
    heldUnder.set(event.object.metadata.name, seen);
  });
  for (let round = 1; round <= downgrades; round++) {
    // The forward upgrade before this round may leave violations of its own (old pods on the newer
    // schema until the rollout ends, as with any Airflow upgrade): only this downgrade's count.
    e.sim.runtime.violations.clear();
    await helm.upgrade(s, TO, { hook: 'post-upgrade' });
    const op = await waitFor(
      `downgrade ${round} done`,
      () => {
        const o = e.operation(s.namespace, s.release);
        return o && !ids.includes(o.id) && ['done', 'held', 'aborted', 'cancelled', 'returned'].includes(o.phase) && o;
      },
      60_000,
      100,
    );
    expectDowngradeDone(op, round);
    // The fresh id reached every held workload (those admitted under the derived one were moved to it).
    for (const w of releaseWorkloads(s).filter((x) => x.component !== 'statsd'))
      expect([...(heldUnder.get(w.name) ?? [])], `${w.name} round ${round}`).toContain(op.id);
    heldUnder.clear();
    await waitFor(
      `release running ${TO} (round ${round})`,
      () => releaseReady(e.sim, { ...s, version: TO }),
      60_000,
      100,
    );
    expect(await e.revision()).toBe(headOf(TO));
    for (const w of releaseWorkloads(s))
      expect(guardAnnotations(e.workload(w.kind, s.namespace, w.name)), `${w.name} round ${round}`).toEqual([]);
    await e.sim.runtime.sweep();
    expect(e.sim.runtime.violations.list(), `violations in round ${round}`).toEqual([]);
    ids.push(op.id);
    if (round < downgrades) {
      await helm.upgrade(s, FROM, { hook: 'post-upgrade' });
      await waitFor(`release back on ${FROM} (round ${round})`, () => releaseReady(e.sim, s), 60_000, 100);
      expect(await e.revision()).toBe(headOf(FROM));
    }
  }
  stopWatching();
  expect(new Set(ids).size, `operation ids ${ids.join(', ')}`).toBe(downgrades);
  return { e2e: e, ids };
}

function expectDowngradeDone(op: OperationState, round: number): void {
  expect(op.phase, `round ${round}: ${op.heldReason ?? ''}`).toBe('done');
  expect(stepSequence(op), `round ${round}`).toEqual(FULL_SEQUENCE);
  expect(
    op.steps.some((s) => s.step === 'downgrade' && s.outcome === 'ok'),
    `round ${round} ran the downgrade`,
  ).toBe(true);
  // Rounds after the first get a fresh id; the id the webhook derived is kept as admittedAs.
  if (round > 1) expect(op.admittedAs).toMatch(/^dg-/);
}
