// Issue 17 item 7: the strict order is the default. drain-first drains every database-touching
// workload, runs the downgrade in a runner pod made from the newer template, verifies, releases:
// no pod ever runs on a schema it does not match, not even the newer one on the older schema
// (the simulated runtime records those as exposures). downgrade-first keeps the newer pods serving
// during the downgrade and has exposures until the drain.
import { afterEach, describe, expect, it } from 'vitest';
import { eventsOf, expectDowngraded, startE2E, stepSequence, type E2E, type ReleaseSpec } from './harness.js';
import { imitatedHelm } from './helm-imitation.js';

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

describe('--order', () => {
  it('drain-first (the default): drained, downgraded in a runner pod, verified, released; zero exposures', async () => {
    e2e = await startE2E({ order: 'drain-first', stepDurationMs: 300 });
    const s = spec('strict');
    await e2e.installRelease(s);
    await e2e.startGuard();
    await imitatedHelm(e2e).upgrade(s, '3.0.2', { hook: 'post-upgrade' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(op.order).toBe('drain-first');
    expect(stepSequence(op)).toEqual(['open', 'confirm', 'quiesce', 'downgrade', 'verify', 'drain', 'release']);
    expect(op.execPod?.runner).toBe(true);
    expect(e2e.sim.runtime.violations.exposures()).toEqual([]);
    expect(eventsOf(e2e, s.namespace).some((ev) => ev.reason === 'RunnerPodStarted')).toBe(true);
  });

  it('downgrade-first: the newer pods serve during the downgrade and are exposed to the older schema until the drain', async () => {
    e2e = await startE2E({ order: 'downgrade-first', stepDurationMs: 300 });
    const s = spec('serving');
    await e2e.installRelease(s);
    await e2e.startGuard();
    await imitatedHelm(e2e).upgrade(s, '3.0.2', { hook: 'post-upgrade' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(op.order).toBe('downgrade-first');
    expect(stepSequence(op)).toEqual(['open', 'confirm', 'downgrade', 'verify', 'drain', 'release']);
    expect(op.execPod?.runner).toBe(false);
    expect(e2e.sim.runtime.violations.exposures().length).toBeGreaterThan(0);
  });
});
