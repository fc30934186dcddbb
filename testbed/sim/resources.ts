// The resources the simulated API server serves, as discovery reports them.
import type { ResourceType } from './types.js';

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function r(
  group: string,
  version: string,
  plural: string,
  kind: string,
  namespaced: boolean,
  extra: Partial<ResourceType> = {},
): ResourceType {
  return { group, version, plural, singular: kind.toLowerCase(), kind, namespaced, verbs: RW, ...extra };
}

export const RESOURCES = {
  namespaces: r('', 'v1', 'namespaces', 'Namespace', false, { shortNames: ['ns'], subresources: ['status'] }),
  pods: r('', 'v1', 'pods', 'Pod', true, { shortNames: ['po'], subresources: ['status', 'exec', 'log'] }),
  secrets: r('', 'v1', 'secrets', 'Secret', true),
  configmaps: r('', 'v1', 'configmaps', 'ConfigMap', true, { shortNames: ['cm'] }),
  events: r('', 'v1', 'events', 'Event', true, { shortNames: ['ev'] }),
  serviceaccounts: r('', 'v1', 'serviceaccounts', 'ServiceAccount', true, { shortNames: ['sa'] }),
  services: r('', 'v1', 'services', 'Service', true, { shortNames: ['svc'], subresources: ['status'] }),
  persistentvolumeclaims: r('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', true, {
    shortNames: ['pvc'],
    subresources: ['status'],
  }),
  deployments: r('apps', 'v1', 'deployments', 'Deployment', true, {
    shortNames: ['deploy'],
    subresources: ['status', 'scale'],
  }),
  replicasets: r('apps', 'v1', 'replicasets', 'ReplicaSet', true, {
    shortNames: ['rs'],
    subresources: ['status', 'scale'],
  }),
  statefulsets: r('apps', 'v1', 'statefulsets', 'StatefulSet', true, {
    shortNames: ['sts'],
    subresources: ['status', 'scale'],
  }),
  controllerrevisions: r('apps', 'v1', 'controllerrevisions', 'ControllerRevision', true),
  jobs: r('batch', 'v1', 'jobs', 'Job', true, { subresources: ['status'] }),
  cronjobs: r('batch', 'v1', 'cronjobs', 'CronJob', true, { shortNames: ['cj'], subresources: ['status'] }),
  ingresses: r('networking.k8s.io', 'v1', 'ingresses', 'Ingress', true, {
    shortNames: ['ing'],
    subresources: ['status'],
  }),
  leases: r('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  eventsV1: r('events.k8s.io', 'v1', 'events', 'Event', true, { shortNames: ['ev'] }),
  poddisruptionbudgets: r('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', true, {
    shortNames: ['pdb'],
    subresources: ['status'],
  }),
  mutatingwebhookconfigurations: r(
    'admissionregistration.k8s.io',
    'v1',
    'mutatingwebhookconfigurations',
    'MutatingWebhookConfiguration',
    false,
  ),
  validatingwebhookconfigurations: r(
    'admissionregistration.k8s.io',
    'v1',
    'validatingwebhookconfigurations',
    'ValidatingWebhookConfiguration',
    false,
  ),
  roles: r('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', true),
  rolebindings: r('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', true),
  clusterroles: r('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false),
  clusterrolebindings: r('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false),
} as const satisfies Record<string, ResourceType>;

export const ALL_RESOURCES: ResourceType[] = Object.values(RESOURCES);

export function groupVersion(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export function resourceFor(group: string, version: string, plural: string): ResourceType | undefined {
  return ALL_RESOURCES.find((t) => t.group === group && t.version === version && t.plural === plural);
}

export function resourceForKind(apiVersion: string, kind: string): ResourceType | undefined {
  return ALL_RESOURCES.find((t) => groupVersion(t) === apiVersion && t.kind === kind);
}
