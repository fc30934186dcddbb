// Two guard replicas behind the installed webhook Service (deploy/base, RBAC enforced, self-managed
// certificates): both answer admissions, one drives the release's operation through its Lease, and
// when that one is SIGKILLed in the middle of the `airflow db downgrade` exec the other takes over
// within the lease duration (3 s here) plus a resync, and the downgrade still completes cleanly.
import { afterEach, describe, expect, it } from 'vitest';
import { headForVersion } from '../../src/core/heads.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import { TLS_SECRET_NAME } from '../../src/install/names.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { helmUpgrade, releaseReady, waitFor, type Guard, type ReleaseSpec } from './harness.js';
import { kustomize, startInstalledE2E, type InstalledE2E } from './install-harness.js';

const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

const LEASE_SECONDS = 3;
// Lease expiry, then the survivor's next resync (2 s) or poll finds the operation and takes it.
const HANDOVER_BOUND_MS = LEASE_SECONDS * 1000 + 2_000 + 2_000;

let e2e: InstalledE2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

const SPEC: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 } };

function guardDenials(e: InstalledE2E): string[] {
  return e.rbac
    .denials()
    .filter((d) => d.user === e.guardIdentity.user)
    .map(
      (d) =>
        `${d.verb} ${d.apiGroup || 'core'}/${d.resource}${d.subresource ? `/${d.subresource}` : ''} ${d.namespace ?? ''}/${d.name ?? ''}`,
    );
}

function byIdentity(guards: Guard[], identity: string | undefined): Guard {
  const guard = guards.find((g) => g.identity === identity);
  if (!guard) throw new Error(`no guard with identity ${String(identity)}`);
  return guard;
}

describe('HA: two replicas of the installed guard', () => {
  it('both serve admissions; killing the driving replica mid-downgrade hands the operation over', async () => {
    // Slow migration steps: the downgrade exec lasts a few seconds, long enough to kill its driver inside it.
    e2e = await startInstalledE2E(kustomize('base'), { stepDurationMs: 1_500 });
    const e = e2e;
    // Both replicas start at once and race to create the certificate Secret: both must end up serving it.
    await Promise.all([e.startGuard('airflow-downgrade-guard-a'), e.startGuard('airflow-downgrade-guard-b')]);
    const secret = e.sim.store.get(RESOURCES.secrets, e.guardNamespace, TLS_SECRET_NAME);
    expect(secret).toBeDefined();

    await e.installRelease(SPEC);
    const callsAfterInstall = new Map(e.webhookCalls);
    // Every workload create of the install went through the webhook (failurePolicy Fail): both answered.
    expect([...callsAfterInstall.keys()].sort()).toEqual(['airflow-downgrade-guard-a', 'airflow-downgrade-guard-b']);
    for (const n of callsAfterInstall.values()) expect(n).toBeGreaterThan(0);

    const upgrade = helmUpgrade(e, SPEC, '3.0.2', 'post-upgrade');
    upgrade.catch(() => undefined); // awaited below; avoid an unhandled rejection while we wait elsewhere
    // The driver is the Lease holder; wait until its exec of `airflow db downgrade` has started.
    const driverId = await waitFor(
      'operation in its downgrade step',
      () =>
        e.operation(SPEC.namespace, SPEC.release)?.phase === 'downgrade' && e.leaseHolder(SPEC.namespace, SPEC.release),
      30_000,
      25,
    );
    const driver = byIdentity(e.guards, driverId);
    const survivor = e.guards.find((g) => g !== driver)!;
    await waitFor(
      'downgrade exec started by the driver',
      () => driver.logs.some((l) => l.includes('operation downgrade start')),
      30_000,
      25,
    );
    await new Promise((r) => setTimeout(r, 500)); // inside the exec, not at its edge
    expect(await e.revision()).not.toBe(head('3.0.2'));
    expect(survivor.logs.some((l) => l.includes('operation downgrade start'))).toBe(false); // one driver only

    const killedAt = Date.now();
    await driver.stop('SIGKILL');
    const newHolder = await waitFor(
      'survivor holds the lease',
      () => e.leaseHolder(SPEC.namespace, SPEC.release) === survivor.identity && survivor.identity,
      30_000,
      20,
    );
    const handoverMs = Date.now() - killedAt;
    expect(newHolder).toBe(survivor.identity);

    const done = await waitFor(
      'operation done',
      () => e.operation(SPEC.namespace, SPEC.release)?.phase === 'done' && e.operation(SPEC.namespace, SPEC.release),
      60_000,
      100,
    );
    const completedMs = Date.now() - killedAt;
    await upgrade;
    await waitFor('release running 3.0.2', () => releaseReady(e.sim, { ...SPEC, version: '3.0.2' }), 60_000, 100);
    console.log(
      `[ha] driver ${driver.identity} SIGKILLed mid-downgrade; ${survivor.identity} took the Lease after ${handoverMs} ms (bound ${HANDOVER_BOUND_MS} ms); operation done ${completedMs} ms after the kill`,
    );
    console.log(`[ha] admissions per replica: ${[...e.webhookCalls].map(([id, n]) => `${id}=${n}`).join(', ')}`);
    console.log(`[ha] steps: ${done.steps.map((s) => `${s.step} ${s.outcome}`).join(', ')}`);

    expect(handoverMs).toBeLessThan(HANDOVER_BOUND_MS);
    expect(await e.revision()).toBe(head('3.0.2'));
    expect(done.steps.filter((s) => s.outcome !== 'waiting').map((s) => s.step)).toEqual([
      'open',
      'confirm',
      'downgrade',
      'verify',
      'drain',
      'release',
    ]);
    await e.sim.runtime.sweep();
    expect(e.sim.runtime.violations.list()).toEqual([]);
    expect(guardDenials(e)).toEqual([]);
    // The survivor kept answering admissions alone after the kill (the dead replica left the Service).
    expect(e.webhookCalls.get(survivor.identity)!).toBeGreaterThan(callsAfterInstall.get(survivor.identity)!);
  }, 150_000);

  it('a downgrade exec longer than the lease is never run twice', async () => {
    // The exec (~6 s) outlives the 3 s lease. The driver renews its Lease while the exec runs, so
    // the other replica never takes it: exactly one driver from start to end (and were it taken,
    // the migration lock the running downgrade holds would still keep a second one from starting).
    e2e = await startInstalledE2E(kustomize('base'), { stepDurationMs: 3_000 });
    const e = e2e;
    await Promise.all([e.startGuard('airflow-downgrade-guard-a'), e.startGuard('airflow-downgrade-guard-b')]);
    await e.installRelease(SPEC);
    const holders: string[] = [];
    const watch = setInterval(() => {
      const h = e.leaseHolder(SPEC.namespace, SPEC.release);
      if (h && holders.at(-1) !== h) holders.push(h);
    }, 20);
    try {
      await helmUpgrade(e, SPEC, '3.0.2', 'post-upgrade');
      await waitFor('operation done', () => e.operation(SPEC.namespace, SPEC.release)?.phase === 'done', 60_000, 100);
    } finally {
      clearInterval(watch);
    }
    console.log(`[ha] long exec: lease holders in order: ${holders.join(' -> ')}`);
    const execStarts = e.guards.flatMap((g) =>
      g.logs.filter((l) => l.includes('operation downgrade start')).map(() => g.identity),
    );
    expect(execStarts).toHaveLength(1);
    expect(holders).toEqual([execStarts[0]]);
    expect(e.guards.some((g) => g.logs.some((l) => l.includes('lost the Lease')))).toBe(false);
    expect(await e.revision()).toBe(head('3.0.2'));
    await e.sim.runtime.sweep();
    expect(e.sim.runtime.violations.list()).toEqual([]);
    expect(guardDenials(e)).toEqual([]);
  }, 150_000);
});
