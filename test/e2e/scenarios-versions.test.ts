// Downgrades of other release shapes and the changes the guard leaves alone
// (test/e2e/scenarios/release-shapes.ts) on the simulated cluster; test/cluster/scenarios.test.ts
// runs them on the real control plane.
import { startE2E } from './harness.js';
import { releaseShapeScenarios } from './scenarios/release-shapes.js';

releaseShapeScenarios(startE2E);
