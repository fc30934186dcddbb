// `kubectl apply --dry-run=server` of a downgrade on the real control plane (test/e2e/dry-run.test.ts
// on the simulated one): the pinned kubectl 1.35, kube-apiserver calls the guard with dryRun=true;
// kubectl prints the plan as warnings and nothing in the cluster or the database changes, except one
// audit record marked dryRun.
import https from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneDryRunRecord } from '../e2e/dry-run-audit.js';
import { operationIdFor } from '../../src/core/decide.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { chartWorkload } from '../fixtures/admission/builders.js';
import { kubectlFor, removeKubectlDirs, type Kubectl } from '../testbed/sim/support.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { headOf, waitFor, type ClusterUnderTest, type E2E, type Guard, type ReleaseSpec } from '../e2e/harness.js';
import { startClusterForE2E, startRealE2E } from './e2e-backend.js';
import type { RealCluster } from './cluster.js';

const spec: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 } };
const FROM_HEAD = headOf('3.1.0');
const TO_HEAD = headOf('3.0.2');

let cluster: RealCluster | undefined;
let e2e: E2E<ClusterUnderTest> | undefined;
let guard: Guard;
let auditDb: TestDatabase | undefined;
let kubectl: Kubectl;
let dir: string | undefined;

function readyz(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', ca }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
}

/** Everything the dry run must leave alone, as the API server holds it. */
function snapshot(): string {
  const lists = [
    RESOURCES.deployments,
    RESOURCES.statefulsets,
    RESOURCES.jobs,
    RESOURCES.cronjobs,
    RESOURCES.configmaps,
  ].map((r) =>
    e2e!.sim.store.list(r, spec.namespace).items.map((o) => ({
      kind: o.kind,
      name: o.metadata.name,
      rv: o.metadata.resourceVersion,
      annotations: o.metadata.annotations ?? {},
      spec: o.spec,
    })),
  );
  return JSON.stringify(lists);
}

beforeAll(async () => {
  cluster = await startClusterForE2E((line) => console.log(line));
  auditDb = await createTestDatabase('dryrun_audit');
  e2e = await startRealE2E(cluster);
  await e2e.installRelease(spec);
  guard = await e2e.startGuard('guard-1', ['--audit-database-url', auditDb.url]);
  // Self-managed certificates: the CA is the one the guard injected into its webhook.
  const ca = await waitFor(
    'caBundle injected',
    async () => {
      const config = await e2e!.admin.rest.request<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(
        'GET',
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/airflow-downgrade-guard',
      );
      const bundle = config.webhooks[0]?.clientConfig.caBundle;
      return bundle ? Buffer.from(bundle, 'base64').toString('utf8') : undefined;
    },
    30_000,
    100,
  );
  await waitFor('guard caches ready', () => readyz(guard.port, ca), 30_000, 100);
  kubectl = kubectlFor(cluster.adminKubeconfig);
  dir = mkdtempSync(path.join(os.tmpdir(), 'adg-cluster-dry-run-'));
});

afterAll(async () => {
  await e2e?.stop();
  await auditDb?.drop();
  await cluster?.stop();
  removeKubectlDirs();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('kubectl apply --dry-run=server of a downgrade', () => {
  it('prints the full plan as warnings, changes nothing and leaves a dryRun audit record', async () => {
    const manifest = path.join(dir!, 'scheduler-3.0.2.yaml');
    writeFileSync(
      manifest,
      stringify(
        chartWorkload({
          kind: 'Deployment',
          component: 'scheduler',
          release: spec.release,
          namespace: spec.namespace,
          version: '3.0.2',
          replicas: 2,
        }),
      ),
    );
    const before = snapshot();
    expect(await e2e!.revision()).toBe(FROM_HEAD);

    const result = await kubectl(['apply', '--dry-run=server', '-f', manifest]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/deployment\.apps\/airflow-scheduler (configured|unchanged) \(server dry run\)/);
    const all = result.stderr
      .split('\n')
      .filter((l) => l.startsWith('Warning: '))
      .map((l) => l.slice('Warning: '.length));
    const warnings = all.slice(all.findIndex((l) => l.startsWith('airflow-downgrade-guard: ')));
    const text = warnings.join('\n');
    const opId = operationIdFor('airflow', 'airflow', FROM_HEAD, TO_HEAD);
    expect(warnings[0]).toBe(
      `airflow-downgrade-guard: DOWNGRADE of release airflow from 3.1.0 to 3.0.2 (schema ${FROM_HEAD} -> ${TO_HEAD}); deployment/airflow-scheduler is held (spec.paused=true), operation ${opId}. Dry run: nothing is held and no operation starts.`,
    );
    expect(text).toMatch(
      new RegExp(
        `Plan \\(order downgrade-first\\): run "airflow db downgrade --to-revision ${TO_HEAD} --yes" \\(Airflow 3\\.0\\.2\\) in pod airflow-api-server-[a-z0-9-]+ \\(api-server, 3\\.1\\.0\\), then check alembic_version\\.`,
      ),
    );
    expect(text).toContain(
      'Then drain (scale to 0, suspend CronJobs): deployment/airflow-api-server (1), deployment/airflow-dag-processor (1), deployment/airflow-scheduler (2), deployment/airflow-triggerer (1), deployment/airflow-worker (1).',
    );
    expect(text).toContain('Then release the hold so 3.0.2 starts on the matching schema.');
    expect(text).not.toMatch(/statsd/);
    expect(text).toContain(
      'Estimated outage: 5 workloads (6 pods) stop at the drain, after the downgrade and its check, until the 3.0.2 pods start and are Ready; 3.1.0 keeps serving while the downgrade runs.',
    );
    expect(text).toMatch(/database backup/);

    // Nothing changed: give the coordinator time to (wrongly) react, then compare.
    await new Promise((r) => setTimeout(r, 1500));
    expect(snapshot()).toBe(before);
    const scheduler = e2e!.workload('Deployment', 'airflow', 'airflow-scheduler') as {
      spec: { paused?: boolean; replicas: number; template: { spec: { containers: Array<{ image: string }> } } };
      metadata: { annotations?: Record<string, string> };
    };
    expect(scheduler.spec.paused ?? false).toBe(false);
    expect(scheduler.spec.replicas).toBe(2);
    expect(scheduler.spec.template.spec.containers[0]?.image).toBe('apache/airflow:3.1.0');
    expect(
      Object.keys(scheduler.metadata.annotations ?? {}).filter((k) => k.startsWith('airflow-downgrade-guard/')),
    ).toEqual([]);
    expect(e2e!.operation('airflow', 'airflow')).toBeUndefined();
    expect(await e2e!.revision()).toBe(FROM_HEAD);

    await expectOneDryRunRecord(auditDb!.url, {
      fromRevision: FROM_HEAD,
      toRevision: TO_HEAD,
      user: 'kubernetes-admin',
      warnings,
    });
  });

  it('a dry run of a same-head change prints no warning', async () => {
    const manifest = path.join(dir!, 'scheduler-3.1.7.yaml');
    writeFileSync(
      manifest,
      stringify(
        chartWorkload({
          kind: 'Deployment',
          component: 'scheduler',
          release: spec.release,
          namespace: spec.namespace,
          version: '3.1.7',
          replicas: 2,
        }),
      ),
    );
    const result = await kubectl(['apply', '--dry-run=server', '-f', manifest]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/airflow-downgrade-guard/);
    expect(e2e!.operation('airflow', 'airflow')).toBeUndefined();
  });
});
