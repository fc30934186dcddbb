// More scenarios of test/e2e on the real control plane, with their assertions: other release shapes
// and the changes the guard leaves alone (test/e2e/scenarios/release-shapes.ts), a failing and a
// halfway exec, the guard SIGKILLed mid-operation (test/e2e/scenarios/failures.ts), and a return to
// the from-version (test/e2e/return-scenarios.ts).
import { describe, it } from 'vitest';
import { releaseSpec } from '../e2e/harness.js';
import { returnAfterRelease } from '../e2e/return-scenarios.js';
import { failureScenarios } from '../e2e/scenarios/failures.js';
import { releaseShapeScenarios } from '../e2e/scenarios/release-shapes.js';
import { startedPerTest } from '../e2e/scenarios/start.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

releaseShapeScenarios(real.start);
failureScenarios(real.start);

// Issue 17 item 2 on the real control plane: the body of test/e2e/returns.test.ts's scenario.
describe('a return to the from-version', () => {
  const start = startedPerTest(real.start);
  it('after release, by helm rollback (order drain-first): a return operation moves the schema forward, then restores the release', async () => {
    const e2e = await start({ order: 'drain-first' });
    await returnAfterRelease(e2e, releaseSpec('return-after'));
  });
});
