// Real Helm 3.17.2 and 4.1.4 on the real control plane (issue 13): `helm install` of the fixture chart
// (test/support/airflow-chart.ts) at 3.1.0, `helm upgrade --wait --timeout 5m` to 3.0.2 guarded by the
// guard the harness starts (done, full step sequence, zero violations), then `helm rollback` to
// revision 1: a return, settled at 3.1.0. The body is the simulated cluster's (test/e2e/scenarios/helm.ts;
// helm-safety.test.ts "(b) `helm rollback` … after the downgrade is done").
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, it, onTestFailed } from 'vitest';
import { writeAirflowFixtureChart } from '../support/airflow-chart.js';
import { HELM_MAJORS, helmFor, type Helm } from '../support/helm.js';
import { describeRelease } from '../e2e/harness.js';
import { HELM_FROM, HELM_TO, helmDowngradeThenRollback, helmInstallFixture } from '../e2e/scenarios/helm.js';
import { startedPerTest } from '../e2e/scenarios/start.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

/** Helm version × scenario × outcome × ms from `helm upgrade` to all pods Ready (the closing note's table). */
const table: string[] = [];
afterAll(() => {
  if (table.length) console.log(['helm | scenario | outcome | upgrade to all pods Ready ms', ...table].join('\n'));
});

for (const major of HELM_MAJORS) {
  // Helm 4 applies server-side without force: this rollback failed on a conflict with the guard's
  // field manager (.spec.replicas, .spec.suspend) until the guard left workloads the rollback had yet
  // to apply alone and gave up the spec fields it writes (steps/drain.ts, core/managed-fields.ts).
  describe(`Helm ${major} on the real control plane`, () => {
    const start = startedPerTest(real.start);
    let used: { helm: Helm; dir: string } | undefined;
    afterEach(() => {
      used?.helm.cleanup();
      if (used) rmSync(used.dir, { recursive: true, force: true });
      used = undefined;
    });

    it(
      `\`helm upgrade --wait --timeout 5m\` ${HELM_FROM} -> ${HELM_TO} is guarded; \`helm rollback\` to revision 1 returns to ${HELM_FROM}; a replicas change applies`,
      { timeout: 600_000 },
      async () => {
        const e2e = await start();
        onTestFailed(() => console.log(`state at the failure:\n${describeRelease(e2e, 'airflow', 'airflow')}`));
        await e2e.startGuard();
        const dir = mkdtempSync(path.join(os.tmpdir(), `adg-cluster-helm${major}-`));
        const helm = helmFor(major, e2e.adminKubeconfig);
        used = { helm, dir };
        const chart = writeAirflowFixtureChart(path.join(dir, 'airflow'));
        await helmInstallFixture(e2e, helm, chart);
        const { outcome, upgradeToReadyMs } = await helmDowngradeThenRollback(e2e, helm, chart);
        table.push(
          `${major} | upgrade --wait ${HELM_FROM} -> ${HELM_TO}, helm rollback to 1, upgrade of replicas | ${outcome} | ${upgradeToReadyMs}`,
        );
      },
    );
  });
}
