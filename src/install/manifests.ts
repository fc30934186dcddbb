import {
  AUDIT_SECRET_NAME,
  CONTAINER_PORT,
  DEFAULT_IMAGE,
  DEFAULT_NAMESPACE,
  ENABLED_LABEL,
  GUARD_NAME,
  GUARD_VERSION,
  RUN_AS_USER,
  SERVICE_PORT,
  TLS_SECRET_NAME,
  WEBHOOK_CONFIGURATION_NAME,
  WEBHOOK_NAME_SUFFIX,
  WEBHOOK_PATH,
} from './names.js';
import { permissionsFor, toPolicyRule, type Permission } from './permissions.js';
import { CERT_MODES, guardEnvironment, TLS_MOUNT_PATH, type CertMode } from './serve-contract.js';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export type FailurePolicy = 'Fail' | 'Ignore';

export interface InstallOptions {
  namespace: string;
  /** Empty: all namespaces but kube-system and the guard's own (cluster-wide RBAC). */
  watchNamespaces: string[];
  failurePolicy: FailurePolicy;
  image: string;
  replicas: number;
  /** files: a Secret made by hand (certs generate); cert-manager: files issued by cert-manager, CA injected by its cainjector. */
  certMode: CertMode;
  auditSecretName: string;
  logLevel: string;
  /** The guard container's resources (requests/limits). */
  resources: Resources;
  /** Pod placement: none of these is set unless given (affinity defaults to spreading the replicas). */
  nodeSelector: Record<string, string>;
  tolerations: Array<Record<string, unknown>>;
  affinity: Record<string, unknown>;
  /** Empty: no priority class. */
  priorityClassName: string;
  /** Extra labels on every object and on the guard's pods (never in selectors). */
  labels: Record<string, string>;
}

export interface Resources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

// Default failurePolicy is Fail: with Ignore, an unreachable guard lets a downgrade through
// unheld — exactly the half-done downgrade the guard exists to prevent. The blast radius of Fail
// is kept small: only Airflow-labelled workloads are sent, kube-system and the guard's namespace
// never are (so the guard can always be repaired), two replicas with a PodDisruptionBudget serve
// it, and the uninstall order in deploy/README.md removes the webhook first.
export const DEFAULT_INSTALL_OPTIONS: InstallOptions = {
  namespace: DEFAULT_NAMESPACE,
  watchNamespaces: [],
  failurePolicy: 'Fail',
  image: DEFAULT_IMAGE,
  replicas: 2,
  certMode: 'self-managed',
  auditSecretName: AUDIT_SECRET_NAME,
  logLevel: 'info',
  resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
  nodeSelector: {},
  tolerations: [],
  // Preferred, not required: a one-node cluster must still run both replicas.
  affinity: {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: 'kubernetes.io/hostname',
            labelSelector: {
              matchLabels: { 'app.kubernetes.io/name': GUARD_NAME, 'app.kubernetes.io/instance': GUARD_NAME },
            },
          },
        },
      ],
    },
  },
  priorityClassName: '',
  labels: {},
};

export class InstallOptionsError extends Error {
  override name = 'InstallOptionsError';
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// [registry[:port]/]path[:tag][@sha256:digest] as in the distribution reference grammar. The first
// component is a registry only when it looks like a host (has '.' or ':', or is localhost).
const REGISTRY = /^(localhost|[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*)(:\d+)?$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isImageReference(reference: string): boolean {
  const at = reference.indexOf('@');
  const [nameTag, digest] = at === -1 ? [reference, undefined] : [reference.slice(0, at), reference.slice(at + 1)];
  if (digest !== undefined && !DIGEST.test(digest)) return false;
  const slash = nameTag.lastIndexOf('/');
  const colon = nameTag.lastIndexOf(':');
  const [name, tag] = colon > slash ? [nameTag.slice(0, colon), nameTag.slice(colon + 1)] : [nameTag, undefined];
  if (tag !== undefined && !TAG.test(tag)) return false;
  const components = name.split('/');
  const first = components[0] ?? '';
  if (components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!REGISTRY.test(first)) return false;
    components.shift();
  }
  return name.length <= 255 && components.length > 0 && components.every((c) => PATH_COMPONENT.test(c));
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function check(condition: boolean, message: string): void {
  if (!condition) throw new InstallOptionsError(message);
}

/** Fills defaults and rejects values that would render a broken install. */
export function resolveInstallOptions(partial: Partial<InstallOptions> = {}): InstallOptions {
  const options: InstallOptions = { ...DEFAULT_INSTALL_OPTIONS, ...stripUndefined(partial) };
  check(
    DNS_LABEL.test(options.namespace),
    `namespace must be a DNS label (lowercase letters, digits, '-'), got ${JSON.stringify(options.namespace)}`,
  );
  check(options.namespace !== 'kube-system', 'the guard must not be installed in kube-system');
  const seen = new Set<string>();
  for (const ns of options.watchNamespaces) {
    check(DNS_LABEL.test(ns), `watch namespace must be a DNS label, got ${JSON.stringify(ns)}`);
    check(ns !== options.namespace, `watch namespace ${ns} is the guard's own namespace, which the webhook never sees`);
    check(ns !== 'kube-system', 'kube-system cannot be watched');
    check(!seen.has(ns), `watch namespace ${ns} is listed twice`);
    seen.add(ns);
  }
  check(
    options.failurePolicy === 'Fail' || options.failurePolicy === 'Ignore',
    `failure policy must be Fail or Ignore, got ${JSON.stringify(options.failurePolicy)}`,
  );
  check(isImageReference(options.image), `not an image reference: ${JSON.stringify(options.image)}`);
  check(
    Number.isInteger(options.replicas) && options.replicas >= 1 && options.replicas <= 20,
    `replicas must be a whole number from 1 to 20, got ${options.replicas}`,
  );
  check(
    CERT_MODES.includes(options.certMode),
    `cert mode must be one of ${CERT_MODES.join(', ')}, got ${JSON.stringify(options.certMode)}`,
  );
  check(
    DNS_SUBDOMAIN.test(options.auditSecretName),
    `audit Secret name must be a DNS subdomain, got ${JSON.stringify(options.auditSecretName)}`,
  );
  check(
    LOG_LEVELS.includes(options.logLevel),
    `log level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(options.logLevel)}`,
  );
  for (const part of ['requests', 'limits'] as const) {
    const values = options.resources[part];
    check(
      values === undefined ||
        (isPlainObject(values) && Object.values(values).every((v) => typeof v === 'string' && QUANTITY.test(v))),
      `resources.${part} must map resource names to quantities (e.g. cpu: 50m, memory: 128Mi), got ${JSON.stringify(values)}`,
    );
  }
  check(
    Object.keys(options.resources).every((k) => k === 'requests' || k === 'limits'),
    `resources may only have requests and limits, got ${Object.keys(options.resources).join(', ')}`,
  );
  check(
    isPlainObject(options.nodeSelector) && Object.values(options.nodeSelector).every((v) => typeof v === 'string'),
    `nodeSelector must map label keys to strings, got ${JSON.stringify(options.nodeSelector)}`,
  );
  check(
    Array.isArray(options.tolerations) && options.tolerations.every(isPlainObject),
    `tolerations must be a list of toleration objects, got ${JSON.stringify(options.tolerations)}`,
  );
  check(isPlainObject(options.affinity), `affinity must be an object, got ${JSON.stringify(options.affinity)}`);
  check(
    options.priorityClassName === '' || DNS_SUBDOMAIN.test(options.priorityClassName),
    `priority class name must be a DNS subdomain, got ${JSON.stringify(options.priorityClassName)}`,
  );
  check(
    isPlainObject(options.labels) &&
      Object.entries(options.labels).every(
        ([k, v]) => LABEL_KEY.test(k) && typeof v === 'string' && LABEL_VALUE.test(v),
      ),
    `labels must be valid label keys and values, got ${JSON.stringify(options.labels)}`,
  );
  const reserved = Object.keys(options.labels).filter((k) => k in COMMON_LABELS);
  check(reserved.length === 0, `labels may not set ${reserved.join(', ')} (the guard's own labels)`);
  return { ...options, watchNamespaces: [...options.watchNamespaces] };
}

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[+-]?\d+)?$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const SELECTOR_LABELS = { 'app.kubernetes.io/name': GUARD_NAME, 'app.kubernetes.io/instance': GUARD_NAME };
const COMMON_LABELS = {
  ...SELECTOR_LABELS,
  'app.kubernetes.io/part-of': GUARD_NAME,
  'app.kubernetes.io/version': GUARD_VERSION,
};

function meta(name: string, namespace?: string, extraLabels: Record<string, string> = {}): Manifest['metadata'] {
  return { name, ...(namespace !== undefined ? { namespace } : {}), labels: { ...COMMON_LABELS, ...extraLabels } };
}

/** The user's extra labels on every object (after the guard's own, which they may not override). */
function withLabels(objects: Manifest[], labels: Record<string, string>): Manifest[] {
  if (Object.keys(labels).length === 0) return objects;
  return objects.map((o) => ({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...labels } } }));
}

const WORKLOADS_ROLE = `${GUARD_NAME}-workloads`;

function namespace(options: InstallOptions): Manifest {
  // The guard's pod meets the "restricted" Pod Security Standard; enforce it for its namespace.
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: meta(options.namespace, undefined, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
    }),
  };
}

function serviceAccount(options: InstallOptions): Manifest {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(GUARD_NAME, options.namespace) };
}

const RBAC = 'rbac.authorization.k8s.io/v1';

function subjects(options: InstallOptions) {
  return [{ kind: 'ServiceAccount', name: GUARD_NAME, namespace: options.namespace }];
}

function rules(permissions: Permission[], scope: Permission['scope']) {
  return permissions.filter((p) => p.scope === scope).map(toPolicyRule);
}

function rbac(options: InstallOptions): Manifest[] {
  const permissions = permissionsFor({ selfManagedCerts: options.certMode === 'self-managed' });
  const out: Manifest[] = [];
  const clusterRules = rules(permissions, 'cluster');
  if (clusterRules.length > 0) {
    out.push(
      { apiVersion: RBAC, kind: 'ClusterRole', metadata: meta(GUARD_NAME), rules: clusterRules },
      {
        apiVersion: RBAC,
        kind: 'ClusterRoleBinding',
        metadata: meta(GUARD_NAME),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: GUARD_NAME },
        subjects: subjects(options),
      },
    );
  }
  const workloadRules = rules(permissions, 'airflow-namespaces');
  if (options.watchNamespaces.length === 0) {
    out.push(
      { apiVersion: RBAC, kind: 'ClusterRole', metadata: meta(WORKLOADS_ROLE), rules: workloadRules },
      {
        apiVersion: RBAC,
        kind: 'ClusterRoleBinding',
        metadata: meta(WORKLOADS_ROLE),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: WORKLOADS_ROLE },
        subjects: subjects(options),
      },
    );
  } else {
    for (const ns of options.watchNamespaces) {
      out.push(
        { apiVersion: RBAC, kind: 'Role', metadata: meta(WORKLOADS_ROLE, ns), rules: workloadRules },
        {
          apiVersion: RBAC,
          kind: 'RoleBinding',
          metadata: meta(WORKLOADS_ROLE, ns),
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: WORKLOADS_ROLE },
          subjects: subjects(options),
        },
      );
    }
  }
  const ownRules = rules(permissions, 'own-namespace');
  // Without self-managed certificates the guard touches nothing in its own namespace.
  if (ownRules.length > 0) {
    out.push(
      { apiVersion: RBAC, kind: 'Role', metadata: meta(GUARD_NAME, options.namespace), rules: ownRules },
      {
        apiVersion: RBAC,
        kind: 'RoleBinding',
        metadata: meta(GUARD_NAME, options.namespace),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: GUARD_NAME },
        subjects: subjects(options),
      },
    );
  }
  return out;
}

function probe(path: string, periodSeconds: number, failureThreshold: number) {
  return { httpGet: { path, port: 'https', scheme: 'HTTPS' }, periodSeconds, timeoutSeconds: 2, failureThreshold };
}

function deployment(options: InstallOptions): Manifest {
  const filesMode = options.certMode !== 'self-managed';
  const volumes: Array<Record<string, unknown>> = [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }];
  const mounts: Array<Record<string, unknown>> = [{ name: 'tmp', mountPath: '/tmp' }];
  if (filesMode) {
    volumes.push({ name: 'tls', secret: { secretName: TLS_SECRET_NAME } });
    mounts.push({ name: 'tls', mountPath: TLS_MOUNT_PATH, readOnly: true });
  }
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(GUARD_NAME, options.namespace),
    spec: {
      replicas: options.replicas,
      selector: { matchLabels: SELECTOR_LABELS },
      // Never fewer ready replicas than asked for while the guard itself is updated.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...COMMON_LABELS, ...options.labels } },
        spec: {
          serviceAccountName: GUARD_NAME,
          ...(options.priorityClassName ? { priorityClassName: options.priorityClassName } : {}),
          ...(Object.keys(options.nodeSelector).length > 0 ? { nodeSelector: options.nodeSelector } : {}),
          ...(options.tolerations.length > 0 ? { tolerations: options.tolerations } : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUN_AS_USER,
            runAsGroup: RUN_AS_USER,
            fsGroup: RUN_AS_USER,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(Object.keys(options.affinity).length > 0 ? { affinity: options.affinity } : {}),
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'guard',
              image: options.image,
              imagePullPolicy: 'IfNotPresent',
              args: ['serve'],
              ports: [{ name: 'https', containerPort: CONTAINER_PORT, protocol: 'TCP' }],
              env: guardEnvironment({
                certMode: filesMode ? 'files' : 'self-managed',
                watchNamespaces: options.watchNamespaces,
                auditSecretName: options.auditSecretName,
                logLevel: options.logLevel,
              }),
              readinessProbe: probe('/readyz', 5, 2),
              livenessProbe: probe('/healthz', 10, 3),
              resources: options.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                runAsUser: RUN_AS_USER,
                runAsGroup: RUN_AS_USER,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}

function podDisruptionBudget(options: InstallOptions): Manifest[] {
  // With one replica, minAvailable 1 would block every node drain forever.
  if (options.replicas < 2) return [];
  return [
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta(GUARD_NAME, options.namespace),
      spec: { minAvailable: 1, selector: { matchLabels: SELECTOR_LABELS } },
    },
  ];
}

function service(options: InstallOptions): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(GUARD_NAME, options.namespace),
    spec: {
      type: 'ClusterIP',
      selector: SELECTOR_LABELS,
      ports: [{ name: 'https', port: SERVICE_PORT, targetPort: 'https', protocol: 'TCP' }],
    },
  };
}

/**
 * One objectSelector cannot OR label conventions, so there is one webhook entry per convention.
 * Each later entry excludes the labels of the earlier ones, so a workload matching several
 * conventions is still sent exactly once; `airflow-downgrade-guard/enabled: "false"` opts out of all.
 */
export const AIRFLOW_LABEL_CONVENTIONS: ReadonlyArray<{ name: string; label: string; value: string; source: string }> =
  [
    { name: 'official-chart', label: 'tier', value: 'airflow', source: 'apache/airflow Helm chart' },
    { name: 'community-chart', label: 'app', value: 'airflow', source: 'airflow-helm/charts' },
    {
      name: 'recommended-labels',
      label: 'app.kubernetes.io/name',
      value: 'airflow',
      source: 'Bitnami and other charts using the recommended labels',
    },
    { name: 'opt-in', label: ENABLED_LABEL, value: 'true', source: 'anything else labelled by hand' },
  ];

export function webhookEntryName(convention: string): string {
  return `${convention}.${WEBHOOK_NAME_SUFFIX}`;
}

function objectSelector(index: number) {
  const convention = AIRFLOW_LABEL_CONVENTIONS[index]!;
  const earlier = AIRFLOW_LABEL_CONVENTIONS.slice(0, index);
  const expressions = [
    { key: convention.label, operator: 'In', values: [convention.value] },
    ...earlier.map((c) => ({ key: c.label, operator: 'NotIn', values: [c.value] })),
  ];
  if (convention.label !== ENABLED_LABEL)
    expressions.push({ key: ENABLED_LABEL, operator: 'NotIn', values: ['false'] });
  return { matchExpressions: expressions };
}

function namespaceSelector(options: InstallOptions) {
  if (options.watchNamespaces.length > 0) {
    return {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [...options.watchNamespaces] }],
    };
  }
  return {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', options.namespace] },
    ],
  };
}

function webhookConfiguration(options: InstallOptions): Manifest {
  const metadata = meta(WEBHOOK_CONFIGURATION_NAME);
  if (options.certMode === 'cert-manager') {
    metadata.annotations = { 'cert-manager.io/inject-ca-from': `${options.namespace}/${GUARD_NAME}` };
  }
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata,
    webhooks: AIRFLOW_LABEL_CONVENTIONS.map((convention, i) => ({
      name: webhookEntryName(convention.name),
      // caBundle is left out: the guard injects it (self-managed), cert-manager does, or you set it.
      clientConfig: {
        service: { namespace: options.namespace, name: GUARD_NAME, path: WEBHOOK_PATH, port: SERVICE_PORT },
      },
      rules: [
        {
          apiGroups: ['apps'],
          apiVersions: ['v1'],
          resources: ['deployments', 'statefulsets'],
          operations: ['CREATE', 'UPDATE'],
          scope: 'Namespaced',
        },
        {
          apiGroups: ['batch'],
          apiVersions: ['v1'],
          resources: ['jobs', 'cronjobs'],
          operations: ['CREATE', 'UPDATE'],
          scope: 'Namespaced',
        },
      ],
      objectSelector: objectSelector(i),
      namespaceSelector: namespaceSelector(options),
      failurePolicy: options.failurePolicy,
      matchPolicy: 'Equivalent',
      // Admission answers from caches in milliseconds; 5 s bounds a stuck call well below the API server's 30 s.
      timeoutSeconds: 5,
      // Opening an operation is a side effect, skipped on dry runs.
      sideEffects: 'NoneOnDryRun',
      admissionReviewVersions: ['v1'],
      // The guard's patch only holds a rollout; later webhooks' changes need no second look.
      reinvocationPolicy: 'Never',
    })),
  };
}

function certManagerObjects(options: InstallOptions): Manifest[] {
  if (options.certMode !== 'cert-manager') return [];
  const dnsNames = [
    GUARD_NAME,
    `${GUARD_NAME}.${options.namespace}`,
    `${GUARD_NAME}.${options.namespace}.svc`,
    `${GUARD_NAME}.${options.namespace}.svc.cluster.local`,
  ];
  return [
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: meta(`${GUARD_NAME}-selfsigned`, options.namespace),
      spec: { selfSigned: {} },
    },
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: meta(GUARD_NAME, options.namespace),
      spec: {
        secretName: TLS_SECRET_NAME,
        dnsNames,
        duration: '8760h',
        renewBefore: '720h',
        privateKey: { algorithm: 'RSA', size: 2048, rotationPolicy: 'Always' },
        usages: ['server auth', 'digital signature', 'key encipherment'],
        issuerRef: { name: `${GUARD_NAME}-selfsigned`, kind: 'Issuer' },
      },
    },
  ];
}

/**
 * Every object of an install, in apply order: the webhook configuration comes last so it is not
 * active before the Deployment that serves it exists.
 */
export function renderInstallManifests(partial: Partial<InstallOptions> = {}): Manifest[] {
  const options = resolveInstallOptions(partial);
  return withLabels(
    [
      namespace(options),
      serviceAccount(options),
      ...rbac(options),
      ...certManagerObjects(options),
      service(options),
      deployment(options),
      ...podDisruptionBudget(options),
      webhookConfiguration(options),
    ],
    options.labels,
  );
}
