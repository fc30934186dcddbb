// Pods stuck Terminating during the drain: the simulated kubelet is started with a
// stuckTerminating predicate (the harness does not expose it, so startSimCluster is wrapped).
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { KubeObject } from '../../testbed/sim/types.js';
import { runScenario, type Scenario } from './scenarios.js';
import { downgradeRelease, FROM, printReport, saveRows, type FaultRow } from './support.js';

const stuck: { predicate: (pod: KubeObject) => boolean } = { predicate: () => false };

vi.mock('../../testbed/sim/cluster.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../testbed/sim/cluster.js')>();
  return {
    ...original,
    startSimCluster: (options: Parameters<typeof original.startSimCluster>[0] = {}) =>
      original.startSimCluster({
        ...options,
        controllers: { ...options.controllers, stuckTerminating: (pod) => stuck.predicate(pod) },
      }),
  };
});

const rows: FaultRow[] = [];
afterAll(() => {
  saveRows('stuck', rows);
  printReport();
});

const schedulerOnOldVersion = (pod: KubeObject): boolean =>
  pod.metadata.labels?.component === 'scheduler' && JSON.stringify(pod.spec).includes(`apache/airflow:${FROM}`);

const SCENARIOS: Scenario[] = [
  {
    fault: 'old scheduler pods stuck Terminating (deleted after --drain-timeout-ms, force-deleted after 2x)',
    expected: 'completed',
    guardArgs: ['--drain-timeout-ms', '1500'],
    async run(ctx) {
      stuck.predicate = schedulerOnOldVersion;
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec);
    },
    async after(ctx) {
      stuck.predicate = () => false;
      const forced = ctx.guard.logs.filter((l) => l.includes('force-deleted')).length;
      ctx.note = `${forced} force-delete log lines`;
    },
  },
];

describe('pods stuck terminating', () => {
  for (const scenario of SCENARIOS) {
    it(scenario.fault, async () => {
      const row = await runScenario(scenario);
      rows.push(row);
      expect(row.violations).toBe(0);
      expect([scenario.expected].flat(), JSON.stringify(row)).toContain(row.outcome);
    });
  }
});
