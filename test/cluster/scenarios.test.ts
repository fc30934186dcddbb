// More scenarios of test/e2e on the real control plane, with their assertions: other release shapes
// and the changes the guard leaves alone (test/e2e/scenarios/release-shapes.ts), a failing and a
// halfway exec, and the guard SIGKILLed mid-operation (test/e2e/scenarios/failures.ts).
import { failureScenarios } from '../e2e/scenarios/failures.js';
import { releaseShapeScenarios } from '../e2e/scenarios/release-shapes.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

releaseShapeScenarios(real.start);
failureScenarios(real.start);
