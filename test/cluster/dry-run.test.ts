// `kubectl apply --dry-run=server` of a downgrade on the real control plane, with the scenarios and
// assertions of the simulated cluster's run (test/e2e/scenarios/dry-run.ts): the pinned kubectl 1.35,
// kube-apiserver calls the guard with dryRun=true.
import { dryRunScenarios } from '../e2e/scenarios/dry-run.js';
import { realControlPlane } from './e2e-backend.js';

dryRunScenarios(realControlPlane().start, 'kubernetes-admin');
