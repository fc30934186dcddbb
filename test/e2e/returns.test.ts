// The release goes back to its from-version while the downgrade runs (issue 17 item 2): a
// `helm rollback`, or `helm upgrade --atomic` timing out, at each phase of the operation. Before
// the schema can have changed this is a cancel; after, the guard itself migrates the schema forward
// again (`helm rollback` runs no hooks) and gives the drained workloads back. Never a release left at
// 0 replicas without an open operation; the end state is the last spec applied.
// Driven by the Helm imitation (helm-imitation.ts); to be re-driven by real Helm once it can talk
// to the simulated API server.
import { describe, expect, it } from 'vitest';
import { abortOperation } from '../../src/coordinator/operator-actions.js';
import { eventsOf, headOf, releaseReady, startE2E, waitFor } from './harness.js';
import { imitatedHelm } from './helm-imitation.js';
import {
  FROM,
  returnAfterRelease,
  returnAfterVerify,
  returnBeforeExec,
  returnDuringDrain,
  returnDuringExec,
  returnSpec as spec,
  steps,
  TO,
} from './return-scenarios.js';
import { startedPerTest } from './scenarios/start.js';

// The bodies are in return-scenarios.ts; test/cluster/scenarios.test.ts runs one per phase on the
// real control plane, test/faults/returns.slow.test.ts every phase by every method.
const start = startedPerTest(startE2E);

describe('a return to the from-version during the downgrade (order downgrade-first)', () => {
  it('before the exec (confirm stalled on the database): shown at once as a stall, then a cancel', async () => {
    await returnBeforeExec(start, 'before', 'helm rollback');
  });

  it('during the exec (helm upgrade --atomic times out): the guard migrates the schema forward again', async () => {
    await returnDuringExec(start, 'during', 'helm upgrade --atomic');
  });

  it('during the exec, by a plain helm upgrade back (its 3.1.0 migration Job as a post-upgrade hook): one schema, back at 3.1.0', async () => {
    await returnDuringExec(start, 'upgradeback', 'helm upgrade');
  });

  it('after verify, as the drain starts (old scheduler pods stuck Terminating): forward again, drained workloads restored', async () => {
    await returnAfterVerify(start, 'verified', 'helm upgrade --atomic');
  });

  it('during the drain (everything at 0, old pods still terminating), by helm rollback: forward again, replicas back', async () => {
    await returnDuringDrain(start, 'draining', 'helm rollback');
  });
});

describe('a return to the from-version during the downgrade (order drain-first)', () => {
  it('during the drain before the downgrade (old scheduler pods stuck Terminating), by helm rollback: nothing to migrate, replicas back', async () => {
    await returnDuringDrain(start, 'quiesce', 'helm rollback', 'drain-first');
  });

  it('during the exec in the runner pod (helm upgrade --atomic times out): forward again in the runner, replicas back', async () => {
    await returnDuringExec(start, 'runner', 'helm upgrade --atomic', 'drain-first');
  });

  it('after verify (the return lands in the drain or in the release, which waits for it): forward again, replicas back', async () => {
    await returnAfterVerify(start, 'afterverify', 'helm upgrade --atomic', 'drain-first');
  });
});

// After release (the operation is `done`): also run on the real control plane.
describe.each(['drain-first', 'downgrade-first'] as const)(
  'a return to the from-version after release (order %s)',
  (order) => {
    it('by helm rollback: held, a new operation migrates the schema forward, the release runs the from-version again', async () => {
      await returnAfterRelease(await start({ order }), spec(`after-${order}`), 'helm rollback', order);
    }, 120_000);
  },
);

// Issue 17 item 1: every downgrade is its own operation, also after an aborted one. The webhook
// derives the same id for the same release and schema pair; a later downgrade must not be taken
// for the aborted operation's holds (left in place on purpose) and stay held with no Event.
describe('a downgrade after an aborted one', () => {
  it('opens a new operation and runs every step', async () => {
    const e = await start();
    const s = spec('afterabort');
    await e.installRelease(s);
    await e.startGuard('guard', ['--stall-timeout-ms', '600000']);
    const secret = `${s.release}-metadata`;
    const url = Buffer.from(e.db.url).toString('base64');
    await e.admin.patch('Secret', s.namespace, secret, [
      {
        op: 'replace',
        path: '/data/connection',
        value: Buffer.from(e.db.url.replace(/:(\d+)\//, ':1/')).toString('base64'),
      },
    ]);
    const helm = imitatedHelm(e);
    await helm.upgrade(s, TO, { hook: 'none' });
    const stalled = await waitFor(
      'stall recorded',
      () => e.operation(s.namespace, s.release)?.stalled && e.operation(s.namespace, s.release),
      30_000,
      50,
    );
    const aborted = await abortOperation(e.admin, stalled, 'admin');
    expect(aborted.phase).toBe('aborted');
    // Back to the from-version (its holds are removed), the database fixed, the downgrade again.
    await helm.rollback(s, FROM);
    await waitFor(`release running ${FROM}`, () => releaseReady(e.sim, s), 30_000, 100);
    await e.admin.patch('Secret', s.namespace, secret, [{ op: 'replace', path: '/data/connection', value: url }]);
    await helm.upgrade(s, TO, { hook: 'none' });
    const op = await waitFor(
      'second downgrade ended',
      () => {
        const o = e.operation(s.namespace, s.release);
        return o && o.id !== aborted.id && ['done', 'held', 'aborted', 'cancelled', 'returned'].includes(o.phase) && o;
      },
      30_000,
      100,
    );
    expect(op.phase, `${op.phase}: ${op.heldReason ?? ''}`).toBe('done');
    expect(steps(op)).toContain('downgrade');
    await waitFor(`release running ${TO}`, () => releaseReady(e.sim, { ...s, version: TO }), 30_000, 100);
    expect(await e.revision()).toBe(headOf(TO));
    const opened = eventsOf(e, s.namespace).filter((ev) => ev.reason === 'DowngradeOpened');
    expect(opened.some((ev) => ev.message?.includes(op.id))).toBe(true);
  });
});
