// `helm uninstall` of the guard while a downgrade is open (docs/helm.md, "Uninstall"): Helm is not
// refused; the guard's objects go (webhook configuration, TLS Secret), and the release stays held
// with its operation record open, for `status` to show and an operator to finish by hand.
import path from 'node:path';
import pg from 'pg';
import { parseAllDocuments } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/install/manifests.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { HELM_MAJORS, helmFor, type Helm } from '../support/helm.js';
import { removeKubectlDirs } from '../testbed/sim/support.js';
import { guardAnnotations, releaseWorkloads, ROOT, upgradeRelease, waitFor, type ReleaseSpec } from './harness.js';
import { startInstalledE2E, type InstalledE2E } from './install-harness.js';

const GUARD_CHART = path.join(ROOT, 'deploy/chart');
const GUARD_NAMESPACE = 'airflow-downgrade-guard';
const GUARD_IMAGE = 'registry.example.com/platform/airflow-downgrade-guard:0.1.0';
const spec: ReleaseSpec = { release: 'open', namespace: 'open', version: '3.1.0', replicas: { scheduler: 2 } };

for (const major of HELM_MAJORS) {
  describe(`Helm ${major}: helm uninstall of the guard while an operation is open`, () => {
    let e2e: InstalledE2E | undefined;
    let helm: Helm | undefined;
    let lock: pg.Client | undefined;
    afterEach(async () => {
      // Before the database is dropped with the environment.
      await lock?.end().catch(() => undefined);
      await e2e?.stop();
      helm?.cleanup();
      removeKubectlDirs();
    });

    it('is not refused: the guard’s objects go, the release stays held with its operation open', async () => {
      const renderer = helmFor(major, '');
      const args = ['airflow-downgrade-guard', GUARD_CHART, '-n', GUARD_NAMESPACE, '--set', `image=${GUARD_IMAGE}`];
      const manifests = parseAllDocuments(await renderer.template(args))
        .map((d) => d.toJS() as Manifest)
        .filter(Boolean);
      renderer.cleanup();
      e2e = await startInstalledE2E(manifests, {
        install: async (kubeconfig) => {
          helm = helmFor(major, kubeconfig);
          await helm.ok(['install', ...args]);
        },
      });
      await e2e.startGuard();
      await waitFor('TLS Secret made by the guard', () =>
        e2e!.sim.store.get(RESOURCES.secrets, GUARD_NAMESPACE, 'airflow-downgrade-guard-tls'),
      );
      await e2e.installRelease(spec);
      // The downgrade waits on the migration lock: the operation stays open at `downgrade`.
      lock = new pg.Client({ connectionString: e2e.db.url });
      await lock.connect();
      await lock.query('SELECT pg_advisory_lock(1)');
      await upgradeRelease(e2e, spec, '3.0.2', { hook: 'none' });
      const open = await waitFor('operation at downgrade', () => {
        const op = e2e!.operation(spec.namespace, spec.release);
        return op?.phase === 'downgrade' && op;
      });

      const uninstall = await helm!.run(['uninstall', 'airflow-downgrade-guard', '-n', GUARD_NAMESPACE, '--wait']);
      expect(uninstall.code, uninstall.stderr).toBe(0);
      for (const guard of e2e.guards) await guard.stop();
      expect(
        e2e.sim.store.get(RESOURCES.mutatingwebhookconfigurations, undefined, 'airflow-downgrade-guard'),
      ).toBeUndefined();
      await waitFor(
        'TLS Secret deleted with the webhook configuration',
        () => !e2e!.sim.store.get(RESOURCES.secrets, GUARD_NAMESPACE, 'airflow-downgrade-guard-tls'),
        10_000,
        20,
      );

      // What is left: the release held, its operation record open.
      expect(e2e.operation(spec.namespace, spec.release)).toMatchObject({ id: open.id, phase: 'downgrade' });
      for (const w of releaseWorkloads(spec).filter((w) => w.component !== 'statsd')) {
        const obj = e2e.workload(w.kind, spec.namespace, w.name);
        expect(guardAnnotations(obj), w.name).toContain('airflow-downgrade-guard/hold');
        if (w.kind === 'Deployment') expect(obj.spec.paused, w.name).toBe(true);
        else expect(obj.spec.updateStrategy.rollingUpdate.partition, w.name).toBeGreaterThanOrEqual(obj.spec.replicas);
      }
    });
  });
}
