// Official-chart-shaped `helm template` output: workloads from the chart builders plus the other
// kinds the chart renders, as one multi-document YAML stream.
import { stringify } from 'yaml';
import { chartWorkload, type WorkloadOptions } from '../fixtures/admission/builders.js';

export interface RenderOptions {
  release?: string;
  /** Leave out metadata.namespace, like `helm template` without --namespace for some charts. */
  namespace?: string | null;
  version: string;
  replicas?: Record<string, number>;
  /** Also render the pre-upgrade migration Job and the cleanup CronJob. */
  hooks?: boolean;
}

function stripNamespace(object: Record<string, unknown>): Record<string, unknown> {
  const metadata = { ...(object.metadata as Record<string, unknown>) };
  delete metadata.namespace;
  return { ...object, metadata };
}

export function renderChart(o: RenderOptions): string {
  const release = o.release ?? 'airflow';
  const namespace = o.namespace === null ? undefined : (o.namespace ?? 'airflow');
  const labels = { tier: 'airflow', release, chart: 'airflow-1.18.0', heritage: 'Helm' };
  const meta = (name: string): Record<string, unknown> => ({ name, ...(namespace ? { namespace } : {}), labels });
  const workload = (
    options: Omit<WorkloadOptions, 'release' | 'namespace' | 'version'> & { version?: string },
  ): Record<string, unknown> => {
    const object = chartWorkload({
      release,
      namespace: namespace ?? 'default',
      version: o.version,
      replicas: o.replicas?.[options.component] ?? 1,
      ...options,
    });
    return namespace ? object : stripNamespace(object);
  };
  const docs: unknown[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(`${release}-scheduler`) },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta(`${release}-metadata`),
      type: 'Opaque',
      data: { connection: Buffer.from('postgresql://airflow:airflow@pg/airflow').toString('base64') },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(`${release}-config`),
      data: { 'airflow.cfg': '[core]\nexecutor = CeleryExecutor\n' },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(`${release}-api-server`),
      spec: { selector: { tier: 'airflow', component: 'api-server', release }, ports: [{ port: 8080 }] },
    },
    workload({ kind: 'Deployment', component: 'api-server' }),
    workload({ kind: 'Deployment', component: 'scheduler' }),
    workload({ kind: 'Deployment', component: 'dag-processor' }),
    workload({ kind: 'StatefulSet', component: 'triggerer' }),
    workload({ kind: 'StatefulSet', component: 'worker' }),
    workload({ kind: 'Deployment', component: 'statsd', image: 'quay.io/prometheus/statsd-exporter:v0.28.0' }),
    workload({
      kind: 'Deployment',
      component: 'pgbouncer',
      image: 'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1',
    }),
  ];
  if (o.hooks) {
    docs.push(workload({ kind: 'Job', component: 'run-airflow-migrations' }));
    docs.push(workload({ kind: 'CronJob', component: 'database-cleanup' }));
  }
  return docs
    .map(
      (d) =>
        `---\n# Source: airflow/templates/${String((d as { kind: string }).kind).toLowerCase()}.yaml\n${stringify(d)}`,
    )
    .join('');
}
