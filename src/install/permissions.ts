import { TLS_SECRET_NAME, WEBHOOK_CONFIGURATION_NAME } from './names.js';

/**
 * Where a permission is granted:
 * - airflow-namespaces: the namespaces the guard watches (a ClusterRole when it watches all,
 *   one Role per namespace with --watch-namespaces);
 * - own-namespace: a Role in the guard's namespace;
 * - cluster: a ClusterRole, for cluster-scoped objects.
 */
export type PermissionScope = 'airflow-namespaces' | 'own-namespace' | 'cluster';

export interface Permission {
  scope: PermissionScope;
  apiGroup: string;
  /** `resource` or `resource/subresource`. */
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  /** Only needed when the guard manages its own certificate. */
  selfManagedCertsOnly?: boolean;
  why: string;
}

// Exactly what the guard's code calls; the RBAC in deploy/ is rendered from this list and the
// end-to-end tests report any entry no scenario used.
export const GUARD_PERMISSIONS: readonly Permission[] = [
  {
    scope: 'airflow-namespaces',
    apiGroup: 'apps',
    resources: ['deployments', 'statefulsets'],
    verbs: ['get', 'list', 'watch'],
    why: 'cache of each release: workloads, their versions and rollout state',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: 'apps',
    resources: ['replicasets'],
    verbs: ['list'],
    why: 'runner pod template from an old ReplicaSet when no workload of the newer version is left',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['pods'],
    verbs: ['get', 'list', 'watch'],
    why: 'find a running pod of the newer version to exec into; wait for old pods to be gone',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: 'batch',
    resources: ['jobs', 'cronjobs'],
    verbs: ['get', 'list', 'watch'],
    why: 'cache of migration Jobs and CronJobs of each release',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: 'apps',
    resources: ['deployments', 'statefulsets'],
    verbs: ['patch'],
    why: 'hold, drain (replicas 0) and release a rollout (spec.paused, rollingUpdate.partition, replicas) with state annotations',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: 'batch',
    resources: ['jobs', 'cronjobs'],
    verbs: ['patch'],
    why: 'suspend and unsuspend Jobs and CronJobs during an operation',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: 'batch',
    resources: ['jobs'],
    verbs: ['delete'],
    why: 'delete a held Job a return to the from-version left behind (never ran; it would run the version the release left)',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['pods/exec'],
    // The WebSocket exec (a GET) is authorized as `get`, and since the
    // AuthorizePodWebsocketUpgradeCreatePermission gate (default on) also as `create`.
    verbs: ['get', 'create'],
    why: 'run `airflow db downgrade` and read alembic heads in a pod of the newer version',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['pods'],
    verbs: ['create', 'delete'],
    why: 'short-lived runner pod when no pod of the newer version runs; short-lived probe pod running `airflow version` for an image whose version its registry does not tell; delete pods still running the old head after the drain timeout',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['serviceaccounts'],
    verbs: ['get'],
    why: "a held workload's ServiceAccount: its imagePullSecrets, to read the image's labels from a private registry",
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['secrets'],
    // Only the release's metadata-connection Secret is read, but its name differs per release
    // (`<release>-metadata` or a custom name), so resourceNames cannot list it in advance.
    verbs: ['get'],
    why: "read the metadata database connection to probe alembic_version; a held workload's image pull Secrets (.dockerconfigjson) to read its image's labels",
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['events'],
    verbs: ['create'],
    why: 'Events on the workloads, visible in kubectl describe',
  },
  {
    // The Lease and the operation ConfigMap live next to the release they are about.
    scope: 'airflow-namespaces',
    apiGroup: 'coordination.k8s.io',
    resources: ['leases'],
    verbs: ['get', 'create', 'update'],
    why: 'one replica drives each release operation (Lease airflow-downgrade-guard-<release>)',
  },
  {
    scope: 'airflow-namespaces',
    apiGroup: '',
    resources: ['configmaps'],
    verbs: ['get', 'list', 'watch', 'create', 'update'],
    why: 'operation state (ConfigMap airflow-downgrade-guard-op-<release>), where a restarted or other replica finds it',
  },
  {
    scope: 'own-namespace',
    apiGroup: '',
    resources: ['secrets'],
    verbs: ['get', 'update'],
    resourceNames: [TLS_SECRET_NAME],
    selfManagedCertsOnly: true,
    why: 'reuse and rotate the serving certificate Secret',
  },
  {
    scope: 'own-namespace',
    apiGroup: '',
    resources: ['secrets'],
    // create requests carry no name at authorization time, so resourceNames cannot narrow them.
    verbs: ['create'],
    selfManagedCertsOnly: true,
    why: 'create the serving certificate Secret on first start',
  },
  {
    scope: 'cluster',
    apiGroup: 'admissionregistration.k8s.io',
    resources: ['mutatingwebhookconfigurations'],
    verbs: ['get', 'patch'],
    resourceNames: [WEBHOOK_CONFIGURATION_NAME],
    selfManagedCertsOnly: true,
    why: 'inject the CA into caBundle',
  },
];

export function permissionsFor(options: { selfManagedCerts: boolean }): Permission[] {
  return GUARD_PERMISSIONS.filter((p) => options.selfManagedCerts || !p.selfManagedCertsOnly);
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export function toPolicyRule(permission: Permission): PolicyRule {
  return {
    apiGroups: [permission.apiGroup],
    resources: [...permission.resources],
    verbs: [...permission.verbs],
    ...(permission.resourceNames ? { resourceNames: [...permission.resourceNames] } : {}),
  };
}
