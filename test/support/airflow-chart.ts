// A chart-shaped Airflow fixture chart for real Helm, written from the same knowledge as the rest of
// the suite (testbed/sim/chart.ts renders the official chart's workloads: labels, component names,
// `wait-for-airflow-migrations` init containers, commands the simulated Airflow runs). Placeholders
// in the rendered objects become Helm expressions, so `helm upgrade --set airflowVersion=…` moves the
// whole release like the official chart's `defaultAirflowTag`. The migration Job is a post-install,
// post-upgrade hook (the official chart's default with useHelmHooks).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { chartComponent, chartWorkload, type Json, type Kind } from '../../testbed/sim/chart.js';

const RELEASE = 'xxrelxx';
const NAMESPACE = 'xxnsxx';
const VERSION = '77.77.77';

export interface AirflowChartOptions {
  /** Components and their kind; replicas come from values `replicas.<component>`. */
  components?: Array<{ component: string; kind: Extract<Kind, 'Deployment' | 'StatefulSet'> }>;
}

export const FIXTURE_COMPONENTS: NonNullable<AirflowChartOptions['components']> = [
  { component: 'api-server', kind: 'Deployment' },
  { component: 'scheduler', kind: 'Deployment' },
  { component: 'dag-processor', kind: 'Deployment' },
  { component: 'triggerer', kind: 'StatefulSet' },
  { component: 'worker', kind: 'StatefulSet' },
  { component: 'statsd', kind: 'Deployment' },
  { component: 'pgbouncer', kind: 'Deployment' },
];

function template(obj: Json, replicasKey?: string): string {
  const meta = obj.metadata as { annotations?: Record<string, string> };
  // Helm sets its own ownership annotations.
  if (meta.annotations) {
    delete meta.annotations['meta.helm.sh/release-name'];
    delete meta.annotations['meta.helm.sh/release-namespace'];
  }
  let text = stringify(obj, { lineWidth: 0 });
  if (replicasKey) text = text.replace(/^(  replicas:) \d+$/m, `$1 {{ index .Values.replicas "${replicasKey}" }}`);
  return text
    .replaceAll(RELEASE, '{{ .Release.Name }}')
    .replaceAll(NAMESPACE, '{{ .Release.Namespace }}')
    .replaceAll(VERSION, '{{ .Values.airflowVersion }}');
}

/** The official chart's pgbouncer: an `apache/airflow:airflow-pgbouncer-…` image that is not Airflow, no migration wait. */
function pgbouncer(kind: Extract<Kind, 'Deployment' | 'StatefulSet'>): Json {
  const obj = chartWorkload({
    release: RELEASE,
    namespace: NAMESPACE,
    kind,
    component: 'pgbouncer',
    image: 'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1',
    replicas: 1,
  });
  const spec = (obj.spec as { template: { spec: { containers: Json[]; initContainers?: unknown[] } } }).template.spec;
  delete spec.initContainers;
  for (const c of spec.containers) {
    delete c.env;
    c.args = ['pgbouncer', '-u', 'nobody', '/etc/pgbouncer/pgbouncer.ini'];
  }
  return obj;
}

/** Writes the chart into `dir` (Chart.yaml, values.yaml, templates/) and returns `dir`. */
export function writeAirflowFixtureChart(dir: string, options: AirflowChartOptions = {}): string {
  const components = options.components ?? FIXTURE_COMPONENTS;
  const templates = join(dir, 'templates');
  mkdirSync(templates, { recursive: true });
  writeFileSync(
    join(dir, 'Chart.yaml'),
    stringify({
      apiVersion: 'v2',
      name: 'airflow',
      description: 'Airflow fixture chart shaped like the official chart (tests only)',
      type: 'application',
      version: '1.18.0',
      appVersion: '3.1.0',
    }),
  );
  writeFileSync(
    join(dir, 'values.yaml'),
    stringify({
      airflowVersion: '3.1.0',
      metadataConnection: '',
      replicas: Object.fromEntries(components.map((c) => [c.component, c.component === 'scheduler' ? 2 : 1])),
    }),
  );
  const base = { release: RELEASE, namespace: NAMESPACE, version: VERSION };
  writeFileSync(
    join(templates, 'metadata-secret.yaml'),
    [
      'apiVersion: v1',
      'kind: Secret',
      'metadata:',
      '  name: {{ .Release.Name }}-metadata',
      '  labels: {tier: airflow, component: metadata, release: {{ .Release.Name | quote }}}',
      'type: Opaque',
      'data:',
      '  connection: {{ required "metadataConnection is required" .Values.metadataConnection | b64enc | quote }}',
      '',
    ].join('\n'),
  );
  // One ServiceAccount per component, as the official chart makes them: a real API server refuses
  // pods whose serviceAccountName does not exist.
  writeFileSync(
    join(templates, 'serviceaccounts.yaml'),
    [...components.map((c) => c.component), 'run-airflow-migrations', 'database-cleanup']
      .map((component) =>
        template({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `${RELEASE}-${component}` } }),
      )
      .join('---\n'),
  );
  for (const { component, kind } of components) {
    const obj = component === 'pgbouncer' ? pgbouncer(kind) : chartComponent({ ...base, kind, component, replicas: 1 });
    writeFileSync(join(templates, `${component}.yaml`), template(obj, component));
  }
  const migrate = chartWorkload({ ...base, kind: 'Job', component: 'run-airflow-migrations' });
  const annotations = (migrate.metadata as { annotations: Record<string, string> }).annotations;
  annotations['helm.sh/hook'] = 'post-install,post-upgrade';
  writeFileSync(join(templates, 'run-airflow-migrations.yaml'), template(migrate));
  writeFileSync(
    join(templates, 'database-cleanup.yaml'),
    template(chartWorkload({ ...base, kind: 'CronJob', component: 'database-cleanup' })),
  );
  return dir;
}
