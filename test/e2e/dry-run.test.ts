// `kubectl apply --dry-run=server` of a downgrade (test/e2e/scenarios/dry-run.ts) on the simulated
// cluster; test/cluster/dry-run.test.ts runs the same on the real control plane.
import { startE2E } from './harness.js';
import { dryRunScenarios } from './scenarios/dry-run.js';

dryRunScenarios(startE2E, 'admin');
