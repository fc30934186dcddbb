// `kubectl apply --dry-run=server` of a downgrade through the real stack: the API server calls the
// guard (over TLS) with dryRun=true; kubectl prints the plan as warnings and nothing in the cluster
// or the database changes, except one audit record marked dryRun. Run on the simulated cluster
// (test/e2e/dry-run.test.ts, with the pinned kubectl) and the real control plane
// (test/cluster/dry-run.test.ts).
import https from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdmissionRecord } from '../../../src/audit/records.js';
import { queryAudit } from '../../../src/audit/store.js';
import { runAudit } from '../../../src/cli/commands/audit.js';
import { runReview } from '../../../src/cli/commands/review.js';
import { decodePatch } from '../../../src/core/response.js';
import { operationIdFor } from '../../../src/core/decide.js';
import { renderInstallManifests } from '../../../src/install/manifests.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { chartWorkload } from '../../fixtures/admission/builders.js';
import { kubectlFor, removeKubectlDirs, type Kubectl } from '../../testbed/sim/support.js';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.js';
import { headOf, waitFor, type ClusterUnderTest, type E2E, type Guard, type ReleaseSpec } from '../harness.js';
import type { StartE2E } from './start.js';

const spec: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 } };
const FROM_HEAD = headOf('3.1.0');
const TO_HEAD = headOf('3.0.2');

function readyz(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', ca }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
}

/** The CA the API server trusts for the guard's webhook (the harness's, or the one the guard injected). */
async function webhookCa(e: E2E<ClusterUnderTest>): Promise<string> {
  return waitFor(
    'caBundle in the webhook',
    async () => {
      const config = await e.admin.rest.request<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(
        'GET',
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/airflow-downgrade-guard',
      );
      const bundle = config.webhooks[0]?.clientConfig.caBundle;
      return bundle ? Buffer.from(bundle, 'base64').toString('utf8') : undefined;
    },
    30_000,
    100,
  );
}

/** Everything the dry run must leave alone, as the API server holds it. */
function snapshot(e: E2E<ClusterUnderTest>): string {
  const lists = [
    RESOURCES.deployments,
    RESOURCES.statefulsets,
    RESOURCES.jobs,
    RESOURCES.cronjobs,
    RESOURCES.configmaps,
  ].map((r) =>
    e.sim.store.list(r, spec.namespace).items.map((o) => ({
      kind: o.kind,
      name: o.metadata.name,
      rv: o.metadata.resourceVersion,
      annotations: o.metadata.annotations ?? {},
      spec: o.spec,
    })),
  );
  return JSON.stringify(lists);
}

/**
 * The audit side: exactly one admission record, marked dryRun, carrying the plan's warnings and no
 * operation id, and no operation step at all.
 */
async function expectOneDryRunRecord(
  auditUrl: string,
  expected: { fromRevision: string; toRevision: string; user: string; warnings: string[] },
): Promise<void> {
  const pool = new pg.Pool({ connectionString: auditUrl, max: 1 });
  try {
    const records = await waitFor(
      'dry-run audit record',
      async () => {
        const found = (await queryAudit(pool, { kind: 'admission', release: 'airflow' }).catch(
          () => [],
        )) as AdmissionRecord[];
        return found.length > 0 ? found : undefined;
      },
      15_000,
      100,
    );
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      kind: 'admission',
      dryRun: true,
      decision: 'downgrade',
      namespace: 'airflow',
      release: 'airflow',
      objectKind: 'Deployment',
      objectName: 'airflow-scheduler',
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: expected.fromRevision,
      toRevision: expected.toRevision,
      user: expected.user,
    });
    // The id the operation would have had is in the warnings, not on the record: no operation opened.
    expect(records[0]?.operationId).toBeUndefined();
    expect(records[0]?.warnings).toEqual(expected.warnings);
    expect((records[0]?.request as { dryRun?: boolean }).dryRun).toBe(true);
    expect(await queryAudit(pool, { kind: 'operation-step' })).toEqual([]);
  } finally {
    await pool.end();
  }
}

/** `adminUser`: who the cluster's admin kubeconfig authenticates as (the audit record's user). */
export function dryRunScenarios(startOn: StartE2E, adminUser: string): void {
  let e2e: E2E<ClusterUnderTest> | undefined;
  let guard: Guard;
  let auditDb: TestDatabase | undefined;
  let kubectl: Kubectl;
  let dir: string | undefined;

  beforeAll(async () => {
    auditDb = await createTestDatabase('dryrun_audit');
    // The product's default order: the plan warnings describe it.
    e2e = await startOn({ order: 'drain-first' });
    await e2e.installRelease(spec);
    guard = await e2e.startGuard('guard-1', ['--audit-database-url', auditDb.url]);
    const ca = await webhookCa(e2e);
    await waitFor('guard caches ready', () => readyz(guard.port, ca), 30_000, 100);
    kubectl = kubectlFor(e2e.adminKubeconfig);
    dir = mkdtempSync(path.join(os.tmpdir(), 'adg-dry-run-'));
  }, 180_000);

  /** The chart's scheduler Deployment at `version`, as a file for `kubectl apply -f`. */
  function schedulerManifest(version: string): string {
    const file = path.join(dir!, `scheduler-${version}.yaml`);
    const scheduler = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      release: spec.release,
      namespace: spec.namespace,
      version,
      replicas: 2,
    });
    writeFileSync(file, stringify(scheduler));
    return file;
  }

  afterAll(async () => {
    await e2e?.stop();
    await auditDb?.drop();
    removeKubectlDirs();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('kubectl apply --dry-run=server of a downgrade', () => {
    it('the install manifests declare sideEffects: NoneOnDryRun', () => {
      const install = renderInstallManifests({
        namespace: 'airflow-downgrade-guard',
        watchNamespaces: [],
        certMode: 'files',
      } as never) as Array<{ kind: string; webhooks?: Array<{ sideEffects?: string }> }>;
      const hooks = install.find((o) => o.kind === 'MutatingWebhookConfiguration')?.webhooks ?? [];
      expect(hooks.length).toBeGreaterThan(0);
      for (const hook of hooks) expect(hook.sideEffects).toBe('NoneOnDryRun');
    });

    it('prints the full plan as warnings, changes nothing and leaves a dryRun audit record', async () => {
      const manifest = schedulerManifest('3.0.2');
      const before = snapshot(e2e!);
      const revisionBefore = await e2e!.revision();
      expect(revisionBefore).toBe(FROM_HEAD);

      const result = await kubectl(['apply', '--dry-run=server', '-f', manifest]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/deployment\.apps\/airflow-scheduler (configured|unchanged) \(server dry run\)/);
      // kubectl adds a warning of its own (no last-applied annotation); the guard's start with its name.
      const all = result.stderr
        .split('\n')
        .filter((l) => l.startsWith('Warning: '))
        .map((l) => l.slice('Warning: '.length));
      const warnings = all.slice(all.findIndex((l) => l.startsWith('airflow-downgrade-guard: ')));
      const text = warnings.join('\n');
      const opId = operationIdFor('airflow', 'airflow', FROM_HEAD, TO_HEAD);
      // detected versions and heads, and that it is a dry run
      expect(warnings[0]).toBe(
        `airflow-downgrade-guard: DOWNGRADE of release airflow from 3.1.0 to 3.0.2 (schema ${FROM_HEAD} -> ${TO_HEAD}); deployment/airflow-scheduler is held (spec.paused=true), operation ${opId}. Dry run: nothing is held and no operation starts.`,
      );
      // the plan in the guard's order (drain-first, the default): the workloads drained first (statsd
      // does not use the database), then the exact command in a runner pod, then the outage shape
      expect(warnings.slice(1, 5)).toEqual([
        'Plan (order drain-first): first drain (scale to 0, suspend CronJobs): deployment/airflow-api-server (1), deployment/airflow-dag-processor (1), deployment/airflow-scheduler (2), deployment/airflow-triggerer (1),',
        'Drain (continued): deployment/airflow-worker (1).',
        `Then run "airflow db downgrade --to-revision ${TO_HEAD} --yes" (Airflow 3.0.2) in a short-lived runner pod of 3.1.0, check alembic_version, and release the hold so 3.0.2 starts on the matching schema.`,
        'Estimated outage: 5 workloads (6 pods) stop at the drain, before the downgrade, until the 3.0.2 pods start and are Ready; no pod runs on a schema it does not match.',
      ]);
      expect(text).not.toMatch(/statsd/);
      expect(text).toMatch(/database backup/);

      // Nothing changed: give the coordinator time to (wrongly) react, then compare.
      await new Promise((r) => setTimeout(r, 1500));
      expect(snapshot(e2e!)).toBe(before);
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

      expect(warnings.join('\n')).toContain(opId);
      await expectOneDryRunRecord(auditDb!.url, {
        fromRevision: FROM_HEAD,
        toRevision: TO_HEAD,
        user: adminUser,
        warnings,
      });
    });

    it('review replays the admission record that `audit --output json` prints', async () => {
      let lines = '';
      const code = await runAudit(
        { databaseUrl: auditDb!.url, kind: 'admission', release: 'airflow', limit: 10, output: 'json' },
        { stdout: (t) => (lines += t), stderr: () => undefined, env: {} },
      );
      expect(code).toBe(0);
      const record = JSON.parse(lines.trim().split('\n')[0] as string) as AdmissionRecord;
      expect(record).toMatchObject({ kind: 'admission', dryRun: true, decision: 'downgrade' });
      const file = path.join(dir!, 'record.json');
      writeFileSync(file, JSON.stringify(record));
      const { stdout } = await runReview({ file });
      const review = JSON.parse(stdout) as {
        response: { uid: string; allowed: boolean; patch?: string; warnings: string[] };
      };
      expect(review.response.uid).toBe(record.requestUid);
      expect(review.response.allowed).toBe(true);
      expect(decodePatch(review.response as never)).toContainEqual({ op: 'add', path: '/spec/paused', value: true });
      // Without the cluster's state the plan lines differ; the decision and its headline do not.
      expect(review.response.warnings[0]).toBe(record.warnings[0]);
    });

    it('a dry run of a same-head change prints no warning', async () => {
      const manifest = schedulerManifest('3.1.7');
      const result = await kubectl(['apply', '--dry-run=server', '-f', manifest]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/airflow-downgrade-guard/);
      expect(e2e!.operation('airflow', 'airflow')).toBeUndefined();
    });
  });
}
