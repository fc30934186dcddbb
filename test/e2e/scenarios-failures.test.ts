// When the downgrade goes wrong (test/e2e/scenarios/failures.ts), on the simulated cluster;
// test/cluster/scenarios.test.ts runs the same scenarios on the real control plane.
import { startE2E } from './harness.js';
import { failureScenarios } from './scenarios/failures.js';

failureScenarios(startE2E);
