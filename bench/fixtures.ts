// The AdmissionReviews the benchmarks send, built from the chart-rendered workloads of
// src/sim/chart.ts. admissionReview() mirrors test/fixtures/admission/builders.ts (copied so the
// benchmark build does not pull test/ into dist/).
import { chartComponent, chartWorkload, type Kind, type WorkloadOptions } from '../src/sim/chart.js';

export { chartComponent, chartWorkload, type Kind, type WorkloadOptions };

type Json = Record<string, unknown>;

const RESOURCES: Record<Kind, { group: string; resource: string }> = {
  Deployment: { group: 'apps', resource: 'deployments' },
  StatefulSet: { group: 'apps', resource: 'statefulsets' },
  Job: { group: 'batch', resource: 'jobs' },
  CronJob: { group: 'batch', resource: 'cronjobs' },
};

/** Who sent the change: Helm with the admin kubeconfig, kubectl, or a ServiceAccount (Argo CD, the guard). */
export type Client = 'helm' | 'kubectl-set' | 'kubectl-apply' | { username: string; groups?: string[]; fieldManager?: string };

export interface ReviewOptions {
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  object: Json | null;
  oldObject?: Json | null;
  client?: Client;
  dryRun?: boolean;
  uid?: string;
  subResource?: string;
}

let uidCounter = 0;

function clientInfo(client: Client, operation: string): { userInfo: Json; options: Json } {
  const optionsKind = operation === 'CREATE' ? 'CreateOptions' : client === 'kubectl-set' ? 'PatchOptions' : 'UpdateOptions';
  const admin = { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] };
  if (client === 'helm') return { userInfo: admin, options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: 'helm' } };
  if (client === 'kubectl-set') return { userInfo: admin, options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-set' } };
  if (client === 'kubectl-apply') return { userInfo: admin, options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-client-side-apply', fieldValidation: 'Strict' } };
  return {
    userInfo: { username: client.username, groups: client.groups ?? ['system:serviceaccounts', 'system:authenticated'] },
    options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: client.fieldManager ?? 'manager' },
  };
}

/** An admission.k8s.io/v1 AdmissionReview request as the API server POSTs it to the webhook. */
export function admissionReview(o: ReviewOptions): Json {
  const object = o.object ?? o.oldObject ?? {};
  const kind = (object.kind as Kind | undefined) ?? 'Deployment';
  const metadata = (object.metadata ?? {}) as Json;
  const { group, resource } = RESOURCES[kind] ?? { group: 'apps', resource: 'deployments' };
  const gvk = { group, version: 'v1', kind };
  const gvr = { group, version: 'v1', resource };
  const { userInfo, options } = clientInfo(o.client ?? 'helm', o.operation);
  uidCounter += 1;
  const request: Json = {
    uid: o.uid ?? `0d8a1c2e-5b7f-4e0a-9c1d-${String(uidCounter).padStart(12, '0')}`,
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    name: metadata.name,
    namespace: metadata.namespace,
    operation: o.operation,
    userInfo,
    object: o.object ?? null,
    oldObject: o.oldObject ?? null,
    dryRun: o.dryRun ?? false,
    options,
  };
  if (o.subResource) {
    request.subResource = o.subResource;
    request.requestSubResource = o.subResource;
  }
  return { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request };
}

/** An UPDATE that changes only the image version of a stored chart workload (helm upgrade, kubectl set image). */
export function versionChange(
  base: Omit<WorkloadOptions, 'version' | 'stored'>,
  from: string,
  to: string,
  extra: Partial<ReviewOptions> = {},
): Json {
  return admissionReview({
    operation: 'UPDATE',
    oldObject: chartWorkload({ ...base, version: from, stored: true }),
    object: chartWorkload({ ...base, version: to, stored: true }),
    ...extra,
  });
}

export const BENCH_NAMESPACE = 'bench';
/** Components of a release as the official chart renders them for Airflow 3 (7 workloads with the CronJob). */
export const RELEASE_COMPONENTS = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'];

/** Every workload of one release: the Deployments of RELEASE_COMPONENTS and the database-cleanup CronJob. */
export function releaseWorkloads(release: string, namespace: string, version: string): Json[] {
  const deployments = RELEASE_COMPONENTS.map((component) => chartComponent({ kind: 'Deployment', component, release, namespace, version }));
  return [...deployments, chartWorkload({ kind: 'CronJob', component: 'database-cleanup', release, namespace, version })];
}

/** A Deployment of something that is not Airflow (the webhook sees every Deployment in the cluster). */
export function nginxDeployment(namespace: string, extra: Json = {}): Json {
  const obj = chartWorkload({ kind: 'Deployment', component: 'web', name: 'shop-frontend', namespace, image: 'nginx:1.27.2', scheme: 'none', stored: true });
  return { ...obj, ...extra };
}

/** An Airflow Deployment grown to about `bytes` of JSON with environment variables (Kubernetes caps objects at 1.5 MiB). */
export function largeWorkload(o: WorkloadOptions, bytes: number): Json {
  const obj = chartWorkload(o);
  const container = (obj.spec as { template: { spec: { containers: Array<{ env: unknown[] }> } } }).template.spec.containers[0]!;
  const size = (): number => Buffer.byteLength(JSON.stringify(obj));
  const value = 'x'.repeat(64);
  let i = 0;
  // Grow in batches, then trim to just under the target.
  while (size() < bytes) for (let n = 0; n < 500; n++) container.env.push({ name: `AIRFLOW_VAR_SETTING_${i++}`, value });
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
      review: admissionReview({ operation: 'UPDATE', oldObject: nginxDeployment(namespace), object: nginxDeployment(namespace, { spec: { ...(nginxDeployment(namespace).spec as Json), replicas: 3 } }) }),
    },
    {
      name: 'no-change',
      expect: 'no-version-change',
      review: admissionReview({ operation: 'UPDATE', oldObject: chartWorkload({ ...base, version: '3.1.0', stored: true }), object: scaled }),
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
