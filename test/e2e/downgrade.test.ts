// The whole product, end to end: simulated cluster + real Postgres + the real guard over TLS. The
// scenarios (test/e2e/scenarios/downgrade.ts) run on the real control plane too (test/cluster).
import { startE2E } from './harness.js';
import { downgradeScenarios } from './scenarios/downgrade.js';

downgradeScenarios(startE2E);
