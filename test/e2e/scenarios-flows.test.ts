// Deploy-tool flows (test/e2e/scenarios/flows.ts) on the simulated cluster; test/cluster/flows.test.ts
// runs them on the real control plane.
import { startE2E } from './harness.js';
import { flowScenarios } from './scenarios/flows.js';

flowScenarios(startE2E);
