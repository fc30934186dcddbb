// The full fault table (`npm run test:faults`): SIGKILL at every step boundary and inside long
// steps, API faults, Postgres faults (metadata DB and audit store), exec faults, workload faults.
import { afterAll, describe, expect, it } from 'vitest';
import {
  API_FAULTS,
  AUDIT_FAULTS,
  BASELINE,
  EXEC_FAULTS,
  KILLS,
  POSTGRES_FAULTS,
  WORKLOAD_FAULTS,
  runScenario,
  type Scenario,
} from './scenarios.js';
import { printReport, saveRows, type FaultRow } from './support.js';

const rows: FaultRow[] = [];

afterAll(() => {
  saveRows('full', rows);
  printReport();
});

function table(name: string, scenarios: Scenario[]): void {
  describe(name, () => {
    for (const scenario of scenarios) {
      it(scenario.fault, async () => {
        const row = await runScenario(scenario);
        rows.push(row);
        expect(row.violations).toBe(0);
        expect([scenario.expected].flat(), JSON.stringify(row)).toContain(row.outcome);
        expect(row.lostAudit ?? 0).toBe(0);
      });
    }
  });
}

table('baseline', [BASELINE]);
table('guard killed (SIGKILL) and restarted', KILLS);
table('Kubernetes API faults', API_FAULTS);
table('Postgres faults', [...POSTGRES_FAULTS, ...AUDIT_FAULTS]);
table('exec faults', EXEC_FAULTS);
table('workload faults', WORKLOAD_FAULTS);
