// The guard chart's optional ServiceMonitor and PrometheusRule validated by the real kube-apiserver
// against the prometheus-operator CRDs (test/fixtures/prometheus-operator/, upstream v0.93.0): the
// rendered objects pass `kubectl apply --dry-run=server`, and a broken rule does not (the schema is
// enforced). That every metric a rule names is exported: test/install/chart.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/harness.js';
import { helmFor, type Helm } from '../support/helm.js';
import { buildControlPlane } from './components.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { kubectlAt, type KubectlRun } from './kubectl-run.js';

const FIXTURES = join(ROOT, 'test/fixtures/prometheus-operator');
const CRDS = ['servicemonitors', 'prometheusrules'];

let controlPlane: ControlPlane | undefined;
let helm: Helm | undefined;
let dir = '';
let kubectl: (args: string[], input?: string) => Promise<KubectlRun>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adg-chart-monitoring-'));
  controlPlane = await startControlPlane({ binaries: await buildControlPlane() });
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, controlPlane.adminKubeconfig, { mode: 0o600 });
  kubectl = kubectlAt(kubeconfigPath);
  helm = helmFor(4, controlPlane.adminKubeconfig);
  for (const crd of CRDS) {
    const created = await kubectl(['create', '-f', join(FIXTURES, `monitoring.coreos.com_${crd}.yaml`)]);
    expect(created.code, created.stderr).toBe(0);
  }
  const established = await kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...CRDS.map((crd) => `crd/${crd}.monitoring.coreos.com`),
  ]);
  expect(established.code, established.stderr).toBe(0);
  expect((await kubectl(['create', 'namespace', 'airflow-downgrade-guard'])).code).toBe(0);
});

afterAll(async () => {
  helm?.cleanup();
  await controlPlane?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the chart’s ServiceMonitor and PrometheusRule on the real control plane', () => {
  const monitoring = async (): Promise<Array<Record<string, any>>> =>
    parseAllDocuments(
      await helm!.template([
        'airflow-downgrade-guard',
        join(ROOT, 'deploy/chart'),
        '-n',
        'airflow-downgrade-guard',
        '--set',
        'image=registry.example.com/platform/airflow-downgrade-guard:0.1.0',
        '--set',
        'metrics.serviceMonitor.enabled=true',
        '--set',
        'metrics.prometheusRule.enabled=true',
      ]),
    )
      .map((d) => d.toJS() as Record<string, any>)
      .filter((o) => o && ['ServiceMonitor', 'PrometheusRule'].includes(o.kind));

  it('`kubectl apply --dry-run=server` accepts both (validated against the CRDs’ schemas)', async () => {
    const objects = await monitoring();
    expect(objects.map((o) => o.kind).sort()).toEqual(['PrometheusRule', 'ServiceMonitor']);
    const result = await kubectl(
      ['apply', '--dry-run=server', '--validate=strict', '-n', 'airflow-downgrade-guard', '-f', '-'],
      objects.map((o) => JSON.stringify(o)).join('\n'),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      'servicemonitor.monitoring.coreos.com/airflow-downgrade-guard created (server dry run)',
    );
    expect(result.stdout).toMatch(/prometheusrule\.monitoring\.coreos\.com\/\S+ created \(server dry run\)/);
    expect(result.stderr).toBe('');
  });

  it('the schema is enforced: a rule without `expr`, and (strict) an unknown field, are refused', async () => {
    const rule = (await monitoring()).find((o) => o.kind === 'PrometheusRule')!;
    const dryRun = (obj: unknown) =>
      kubectl(
        ['apply', '--dry-run=server', '--validate=strict', '-n', 'airflow-downgrade-guard', '-f', '-'],
        JSON.stringify(obj),
      );
    const noExpr = structuredClone(rule);
    delete noExpr.spec.groups[0].rules[0].expr;
    const missing = await dryRun(noExpr);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/spec\.groups\[0\]\.rules\[0\]\.expr: Required value/);
    const unknown = structuredClone(rule);
    unknown.spec.groups[0].rules[0].severity = 'critical';
    const strict = await dryRun(unknown);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toMatch(/unknown field "spec\.groups\[0\]\.rules\[0\]\.severity"/);
  });
});
