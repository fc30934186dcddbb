// deploy/chart and `airflow-downgrade-guard manifests` are one install: for the same settings, the
// chart rendered by real Helm 3 and Helm 4 gives the objects renderInstallManifests gives (the chart
// leaves the Namespace to `helm install --create-namespace` and adds Helm's two standard labels).
import { resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import {
  renderInstallManifests,
  resolveInstallOptions,
  type InstallOptions,
  type Manifest,
} from '../../src/install/manifests.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { HELM_MAJORS, helmFor, type Helm } from '../support/helm.js';

const CHART = resolve(import.meta.dirname, '../../deploy/chart');
const IMAGE = 'registry.example.com/platform/airflow-downgrade-guard:0.1.0';
const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by'];

/** The chart's values for install options (the names are the same but for the namespace, which is the release's). */
export function chartValuesFor(options: InstallOptions): Record<string, unknown> {
  const { namespace: _namespace, affinity, resources, ...rest } = options;
  // Helm merges a map given in values into the chart's default: null, not {} or leaving it out, removes the default.
  return {
    ...rest,
    affinity: Object.keys(affinity).length === 0 ? null : affinity,
    resources: { requests: resources.requests ?? null, limits: resources.limits ?? null },
  };
}

const CASES: Record<string, Partial<InstallOptions>> = {
  defaults: {},
  'files, namespaced, one replica': {
    certMode: 'files',
    watchNamespaces: ['airflow', 'airflow-prod'],
    replicas: 1,
    namespace: 'guard',
  },
  'cert-manager, Ignore, debug': {
    certMode: 'cert-manager',
    failurePolicy: 'Ignore',
    logLevel: 'debug',
    auditSecretName: 'audit-url',
  },
  'placement, priority, resources, labels': {
    resources: { requests: { cpu: '100m', memory: '200Mi' } },
    nodeSelector: { 'node-role.kubernetes.io/platform': 'true' },
    tolerations: [{ key: 'platform', operator: 'Exists', effect: 'NoSchedule' }],
    affinity: {},
    priorityClassName: 'system-cluster-critical',
    labels: { team: 'data-platform', 'example.com/cost-center': 'c42' },
  },
};

function withoutHelmLabels(o: Manifest): Manifest {
  const strip = (labels: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !HELM_LABELS.includes(k)));
  return { ...o, metadata: { ...o.metadata, labels: strip(o.metadata.labels) } };
}

const key = (o: Manifest) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

const helms: Helm[] = [];
afterAll(() => helms.forEach((h) => h.cleanup()));

for (const major of HELM_MAJORS) {
  describe(`deploy/chart with Helm ${major}`, () => {
    const helm = helmFor(major, '');
    helms.push(helm);

    it.each(Object.entries(CASES))('renders what `manifests` renders: %s', async (_name, partial) => {
      const options = resolveInstallOptions({ ...partial, image: IMAGE });
      const yaml = await helm.template(['airflow-downgrade-guard', CHART, '-n', options.namespace, '-f', '-'], {
        input: JSON.stringify(chartValuesFor(options)),
      });
      const rendered = parseAllDocuments(yaml)
        .map((d) => d.toJS() as Manifest)
        .filter((o) => o);
      for (const o of rendered) {
        expect(o.metadata.labels?.['helm.sh/chart'], key(o)).toBe('airflow-downgrade-guard-0.1.0');
        expect(o.metadata.labels?.['app.kubernetes.io/managed-by'], key(o)).toBe('Helm');
      }
      const expected = renderInstallManifests(options).filter((o) => o.kind !== 'Namespace');
      const actual = new Map(rendered.map((o) => [key(o), withoutHelmLabels(o)]));
      expect([...actual.keys()].sort()).toEqual(expected.map(key).sort());
      for (const o of expected) expect(actual.get(key(o)), key(o)).toEqual(o);
    });

    it('renders the optional ServiceMonitor and PrometheusRule; every metric a rule names is exported by the guard', async () => {
      const yaml = await helm.template([
        'airflow-downgrade-guard',
        CHART,
        '-n',
        'guard',
        '--set',
        `image=${IMAGE}`,
        '--set',
        'metrics.serviceMonitor.enabled=true',
        '--set',
        'metrics.prometheusRule.enabled=true',
      ]);
      const objects = parseAllDocuments(yaml)
        .map((d) => d.toJS() as Manifest & { spec: any })
        .filter((o) => o);
      const monitor = objects.find((o) => o.kind === 'ServiceMonitor')!;
      expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'https', path: '/metrics', scheme: 'https' });
      const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
      const rules = rule.spec.groups.flatMap((g: { rules: Array<{ alert: string; expr: string }> }) => g.rules);
      expect(rules.map((r: { alert: string }) => r.alert)).toEqual(
        expect.arrayContaining([
          'AirflowDowngradeHeld',
          'AirflowDowngradeGuardWebhookSlow',
          'AirflowDowngradeGuardWebhookDenials',
          'AirflowDowngradeGuardAuditDropped',
          'AirflowDowngradeGuardCertificateExpiry',
        ]),
      );
      const metrics = createMetrics({ defaultMetrics: false });
      const exported = new Set<string>();
      for (const m of (await metrics.registry.getMetricsAsJSON()) as unknown as Array<{ name: string; type: string }>) {
        exported.add(m.name);
        if (m.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m.name + suffix);
      }
      // `up` is Prometheus's own per-target series; everything else must come from the guard.
      const PROMQL = new Set([
        'max',
        'min',
        'sum',
        'rate',
        'increase',
        'histogram_quantile',
        'by',
        'le',
        'time',
        'absent',
        'up',
      ]);
      for (const { alert, expr } of rules) {
        const names =
          expr
            .replace(/\{[^}]*\}/g, '')
            .replace(/\[[^\]]*\]/g, '')
            .match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? ([] as string[]);
        for (const name of names.filter((n: string) => !PROMQL.has(n)))
          expect(exported.has(name), `${alert}: ${name}`).toBe(true);
      }
    });

    it('is clean under helm lint --strict', async () => {
      const result = await helm.run(['lint', '--strict', CHART, '--set', `image=${IMAGE}`]);
      expect(result.stdout + result.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(result.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
      expect(result.code).toBe(0);
    });

    it('requires the image (none is published) and checks values against values.schema.json', async () => {
      const noImage = await helm.run(['template', 'airflow-downgrade-guard', CHART]);
      expect(noImage.code).not.toBe(0);
      expect(noImage.stderr).toContain('image is required: no image is published');
      const bad = await helm.run([
        'template',
        'airflow-downgrade-guard',
        CHART,
        '--set',
        `image=${IMAGE}`,
        '--set',
        'failurePolicy=Sometimes',
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/failurePolicy/);
    });
  });
}
