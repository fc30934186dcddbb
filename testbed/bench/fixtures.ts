// The AdmissionReviews the benchmarks send, built from the chart-rendered workloads of
// testbed/sim/chart.ts with testbed/sim/admission-review.ts.
import { admissionReview, versionChange } from '../sim/admission-review.js';
import { chartComponent, chartWorkload, type Kind, type WorkloadOptions } from '../sim/chart.js';

export { admissionReview, chartComponent, chartWorkload, versionChange, type Kind, type WorkloadOptions };

type Json = Record<string, unknown>;

export const BENCH_NAMESPACE = 'bench';
/** Components of a release as the official chart renders them for Airflow 3 (7 workloads with the CronJob). */
export const RELEASE_COMPONENTS = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'];

/** Every workload of one release: the Deployments of RELEASE_COMPONENTS and the database-cleanup CronJob. */
export function releaseWorkloads(release: string, namespace: string, version: string): Json[] {
  const deployments = RELEASE_COMPONENTS.map((component) =>
    chartComponent({ kind: 'Deployment', component, release, namespace, version }),
  );
  return [
    ...deployments,
    chartWorkload({ kind: 'CronJob', component: 'database-cleanup', release, namespace, version }),
  ];
}

/** A Deployment of something that is not Airflow (the webhook sees every Deployment in the cluster). */
export function nginxDeployment(namespace: string, extra: Json = {}): Json {
  const obj = chartWorkload({
    kind: 'Deployment',
    component: 'web',
    name: 'shop-frontend',
    namespace,
    image: 'nginx:1.27.2',
    scheme: 'none',
    stored: true,
  });
  return { ...obj, ...extra };
}

/** An Airflow Deployment grown to about `bytes` of JSON with environment variables (Kubernetes caps objects at 1.5 MiB). */
export function largeWorkload(o: WorkloadOptions, bytes: number): Json {
  const obj = chartWorkload(o);
  const container = (obj.spec as { template: { spec: { containers: Array<{ env: unknown[] }> } } }).template.spec
    .containers[0]!;
  const size = (): number => Buffer.byteLength(JSON.stringify(obj));
  const value = 'x'.repeat(64);
  let i = 0;
  // Grow in batches, then trim to just under the target.
  while (size() < bytes)
    for (let n = 0; n < 500; n++) container.env.push({ name: `AIRFLOW_VAR_SETTING_${i++}`, value });
  while (size() > bytes) container.env.pop();
  return obj;
}

/** The five admission cases the benchmark compares against the floor. */
export interface AdmissionCase {
  name: string;
  /** What the guard is expected to decide. */
  expect: string;
  review: Json;
}

export function admissionCases(namespace: string): AdmissionCase[] {
  const base = { kind: 'Deployment' as const, component: 'scheduler', release: 'current', namespace };
  const bigOld = largeWorkload({ ...base, version: '3.1.0', stored: true }, 1_500_000);
  const bigNew = structuredClone(bigOld);
  (bigNew.spec as { replicas: number }).replicas = 2;
  const scaled = chartWorkload({ ...base, version: '3.1.0', stored: true, replicas: 2 });
  return [
    {
      name: 'pass-through',
      expect: 'pass-through',
      review: admissionReview({
        operation: 'UPDATE',
        oldObject: nginxDeployment(namespace),
        object: nginxDeployment(namespace, { spec: { ...(nginxDeployment(namespace).spec as Json), replicas: 3 } }),
      }),
    },
    {
      name: 'no-change',
      expect: 'no-version-change',
      review: admissionReview({
        operation: 'UPDATE',
        oldObject: chartWorkload({ ...base, version: '3.1.0', stored: true }),
        object: scaled,
      }),
    },
    {
      name: 'forward',
      expect: 'forward',
      review: versionChange({ ...base, release: 'older' }, '3.0.2', '3.1.0'),
    },
    {
      name: 'downgrade dry-run',
      expect: 'downgrade',
      review: versionChange(base, '3.1.0', '3.0.2', { dryRun: true }),
    },
    {
      name: '1.5 MB object',
      expect: 'no-version-change',
      review: admissionReview({ operation: 'UPDATE', oldObject: bigOld, object: bigNew }),
    },
  ];
}
