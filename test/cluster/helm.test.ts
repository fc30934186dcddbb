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
  // Helm 4 applies server-side, and a `helm rollback` after a finished downgrade is a return: the guard
  // drains the release (replicas 0, CronJob suspended: updates owned by its field manager) as soon as
  // Helm's first workload is admitted, so Helm's apply of the later ones conflicts on those fields
  // (docs/helm.md, "Helm 4 and server-side apply"). Without --force-conflicts the rollback fails and
  // the CronJob stays on the downgrade's version, suspended: the return waits for it (docs/real-cluster.md).
  const rollbackFlags = major === 4 ? ['--force-conflicts'] : [];
  const rollback = ['helm rollback', ...rollbackFlags].join(' ');
  describe(`Helm ${major} on the real control plane`, () => {
    const start = startedPerTest(real.start);
    let used: { helm: Helm; dir: string } | undefined;
    afterEach(() => {
      used?.helm.cleanup();
      if (used) rmSync(used.dir, { recursive: true, force: true });
      used = undefined;
    });

    it(
      `\`helm upgrade --wait --timeout 5m\` ${HELM_FROM} -> ${HELM_TO} is guarded; \`${rollback}\` to revision 1 returns to ${HELM_FROM}`,
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
        const { outcome, upgradeToReadyMs } = await helmDowngradeThenRollback(e2e, helm, chart, rollbackFlags);
        table.push(
          `${major} | upgrade --wait ${HELM_FROM} -> ${HELM_TO}, ${rollback} to 1 | ${outcome} | ${upgradeToReadyMs}`,
        );
      },
    );
  });
}
