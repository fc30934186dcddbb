// The fast rows of the fault table (part of `npm test`): one SIGKILL, the refused exec (retried, not held), one exec
// fault and the change of mind while held. The full table is faults.slow.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { API_FAULTS, EXEC_FAULTS, KILLS, WORKLOAD_FAULTS, runScenario, type Scenario } from './scenarios.js';
import { printReport, saveRows, type FaultRow } from './support.js';

const rows: FaultRow[] = [];

const FAST: Scenario[] = [
  KILLS.find((s) => s.fault.includes('after confirm'))!,
  API_FAULTS.find((s) => s.fault.includes('503 on exec'))!,
  EXEC_FAULTS.find((s) => s.fault.includes('halfway, then exit'))!,
  WORKLOAD_FAULTS.find((s) => s.fault.includes('while held'))!,
];

afterAll(() => {
  saveRows('fast', rows);
  printReport();
});

describe('fault table (fast rows)', () => {
  for (const scenario of FAST) {
    it(scenario.fault, async () => {
      const row = await runScenario(scenario);
      rows.push(row);
      expect(row.violations).toBe(0);
      expect([scenario.expected].flat(), JSON.stringify(row)).toContain(row.outcome);
      expect(row.lostAudit ?? 0).toBe(0);
    });
  }
});
