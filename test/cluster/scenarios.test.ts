// More scenarios of test/e2e on the real control plane, with their assertions: other release shapes
// and the changes the guard leaves alone (test/e2e/scenarios/release-shapes.ts), a failing and a
// halfway exec, the guard SIGKILLed mid-operation (test/e2e/scenarios/failures.ts), and a return to
// the from-version at each phase (test/e2e/return-scenarios.ts).
import { describe, it } from 'vitest';
import { releaseSpec } from '../e2e/harness.js';
import {
  returnAfterRelease,
  returnAfterVerify,
  returnBeforeExec,
  returnDuringDrain,
  returnDuringExec,
} from '../e2e/return-scenarios.js';
import { failureScenarios } from '../e2e/scenarios/failures.js';
import { releaseShapeScenarios } from '../e2e/scenarios/release-shapes.js';
import { startedPerTest } from '../e2e/scenarios/start.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

releaseShapeScenarios(real.start);
failureScenarios(real.start);

// Issue 17 item 2 on the real control plane: each phase once, by one method, with the bodies and
// assertions of test/e2e/returns.test.ts (the full matrix: test/faults/returns.slow.test.ts).
describe('a return to the from-version', () => {
  const start = startedPerTest(real.start);
  it('before the exec (confirm stalled on the database), by helm rollback: shown at once as a stall, then a cancel', async () => {
    await returnBeforeExec(start, 'return-before', 'helm rollback');
  });
  it('during the exec (helm upgrade --atomic times out): the guard migrates the schema forward again', async () => {
    await returnDuringExec(start, 'return-exec', 'helm upgrade --atomic');
  });
  it('after verify, as the drain starts (old scheduler pods stuck Terminating), by helm upgrade --atomic: forward again, drained workloads restored', async () => {
    await returnAfterVerify(start, 'return-verified', 'helm upgrade --atomic');
  });
  it('during the drain (everything at 0, old pods still terminating), by helm rollback: forward again, replicas back', async () => {
    await returnDuringDrain(start, 'return-draining', 'helm rollback');
  });
  it('after release, by helm rollback (order drain-first): a return operation moves the schema forward, then restores the release', async () => {
    const e2e = await start({ order: 'drain-first' });
    await returnAfterRelease(e2e, releaseSpec('return-after'), 'helm rollback', 'drain-first');
  });
});
