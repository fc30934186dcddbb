// Issue 17 item 2 in the slow suite: the return to the from-version at every phase of the operation
// (before the exec, during it, after verify, during the drain, after release), by every method
// (`helm rollback`, `helm upgrade --atomic`, a plain `helm upgrade`), in both orders, on the
// simulated cluster. The bodies and assertions are those of test/e2e/returns.test.ts and of the real
// control plane's run (test/e2e/return-scenarios.ts); each prints its `[return]` table row.
import { describe, it } from 'vitest';
import { startE2E } from '../e2e/harness.js';
import {
  RETURN_METHODS,
  returnAfterRelease,
  returnAfterVerify,
  returnBeforeExec,
  returnDuringDrain,
  returnDuringExec,
  returnSpec,
} from '../e2e/return-scenarios.js';
import { startedPerTest } from '../e2e/scenarios/start.js';

const start = startedPerTest(startE2E);
const ORDERS = ['downgrade-first', 'drain-first'] as const;

describe.each(RETURN_METHODS.map((method, i) => [method, i] as const))('a return by %s', (method, m) => {
  it('before the exec (confirm stalled on the database): a cancel', async () => {
    await returnBeforeExec(start, `before-${m}`, method);
  });

  describe.each(ORDERS.map((order, o) => [order, o] as const))('order %s', (order, o) => {
    it('during the exec: the schema forward again, the release back at the from-version', async () => {
      await returnDuringExec(start, `exec-${m}-${o}`, method, order);
    });
    it('after verify, as the drain starts: the release back at the from-version, never released onto the target', async () => {
      await returnAfterVerify(start, `verified-${m}-${o}`, method, order);
    });
    it('during the drain: the release back at the from-version, replicas back', async () => {
      await returnDuringDrain(start, `draining-${m}-${o}`, method, order);
    });
    it('after release: a return operation moves the schema forward and restores the release', async () => {
      await returnAfterRelease(await start({ order }), returnSpec(`after-${m}-${o}`), method, order);
    }, 120_000);
  });
});
