// AdmissionReview v1 requests as the API server POSTs them to a webhook for chart-rendered
// workloads (defaulted fields, Helm/kubectl users and options): tests and benchmarks send them.
import { chartWorkload, type Kind, type WorkloadOptions } from './chart.js';

type Json = Record<string, unknown>;

const RESOURCES: Record<Kind, { group: string; resource: string }> = {
  Deployment: { group: 'apps', resource: 'deployments' },
  StatefulSet: { group: 'apps', resource: 'statefulsets' },
  Job: { group: 'batch', resource: 'jobs' },
  CronJob: { group: 'batch', resource: 'cronjobs' },
};

/** Who sent the change: Helm with the admin kubeconfig, kubectl, or a ServiceAccount (Argo CD, the guard). */
export type Client =
  'helm' | 'kubectl-set' | 'kubectl-apply' | { username: string; groups?: string[]; fieldManager?: string };

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
  const optionsKind =
    operation === 'CREATE' ? 'CreateOptions' : client === 'kubectl-set' ? 'PatchOptions' : 'UpdateOptions';
  const admin = { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] };
  if (client === 'helm')
    return { userInfo: admin, options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: 'helm' } };
  if (client === 'kubectl-set')
    return {
      userInfo: admin,
      options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-set' },
    };
  if (client === 'kubectl-apply')
    return {
      userInfo: admin,
      options: {
        kind: optionsKind,
        apiVersion: 'meta.k8s.io/v1',
        fieldManager: 'kubectl-client-side-apply',
        fieldValidation: 'Strict',
      },
    };
  return {
    userInfo: {
      username: client.username,
      groups: client.groups ?? ['system:serviceaccounts', 'system:authenticated'],
    },
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
