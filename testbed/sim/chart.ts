// Chart-rendered Airflow workloads as the official Helm chart renders them and the API server
// stores them (defaulted fields): the simulated cluster's demo, the tests and the benchmarks use them.

export type Kind = 'Deployment' | 'StatefulSet' | 'Job' | 'CronJob';
export type LabelScheme = 'official' | 'community' | 'bitnami' | 'none';

export interface WorkloadOptions {
  kind: Kind;
  component: string;
  release?: string;
  namespace?: string;
  /** Airflow version for the default image `apache/airflow:<version>`. */
  version?: string;
  /** Full image reference; overrides `version`. */
  image?: string;
  /** Main container name; defaults to the component (official chart). */
  containerName?: string;
  /** Image of the `wait-for-airflow-migrations` init container; defaults to the main image. */
  initImage?: string;
  scheme?: LabelScheme;
  replicas?: number;
  /** Name; defaults to `<release>-<component>` like the official chart. */
  name?: string;
  annotations?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  extraLabels?: Record<string, string>;
  /** StatefulSet only. */
  updateStrategy?: Record<string, unknown>;
  /** Adds uid/resourceVersion/generation like a stored object (oldObject, or object on UPDATE). */
  stored?: boolean;
  chartVersion?: string;
}

export type Json = Record<string, unknown>;

function labelsFor(o: WorkloadOptions, release: string): Record<string, string> {
  switch (o.scheme ?? 'official') {
    case 'official':
      return { tier: 'airflow', component: o.component, release };
    case 'community':
      return { app: 'airflow', component: o.component, release };
    case 'bitnami':
      return {
        'app.kubernetes.io/name': 'airflow',
        'app.kubernetes.io/instance': release,
        'app.kubernetes.io/component': o.component,
      };
    case 'none':
      return { app: o.component };
  }
}

function podTemplate(o: WorkloadOptions, release: string, restartPolicy: string): Json {
  const image = o.image ?? `apache/airflow:${o.version ?? '3.1.0'}`;
  const labels = { ...labelsFor(o, release), ...(o.extraLabels ?? {}) };
  const command =
    o.kind === 'Job' && o.component === 'run-airflow-migrations'
      ? ['bash', '-c', 'exec airflow db migrate']
      : undefined;
  const container: Json = {
    name: o.containerName ?? o.component,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: command ?? ['bash', '-c', `exec airflow ${o.component}`],
    resources: {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    env: [
      {
        name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN',
        valueFrom: { secretKeyRef: { name: `${release}-metadata`, key: 'connection' } },
      },
    ],
  };
  const spec: Json = {
    restartPolicy,
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    schedulerName: 'default-scheduler',
    securityContext: { runAsUser: 50000, fsGroup: 0 },
    serviceAccountName: `${release}-${o.component}`,
    containers: [container],
  };
  if (o.kind === 'Deployment' || o.kind === 'StatefulSet') {
    spec.initContainers = [
      {
        name: 'wait-for-airflow-migrations',
        image: o.initImage ?? image,
        args: ['airflow', 'db', 'check-migrations', '--migration-wait-timeout=60'],
        imagePullPolicy: 'IfNotPresent',
        resources: {},
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      },
    ];
  }
  const metadata: Json = { creationTimestamp: null, labels };
  if (o.podAnnotations) metadata.annotations = o.podAnnotations;
  return { metadata, spec };
}

/** A chart-rendered workload as the API server holds it after defaulting. */
export function chartWorkload(o: WorkloadOptions): Json {
  const release = o.release ?? 'airflow';
  const namespace = o.namespace ?? 'airflow';
  const name = o.name ?? `${release}-${o.component}`;
  const labels: Record<string, string> = {
    ...labelsFor(o, release),
    ...(o.scheme === 'none' ? {} : { chart: `airflow-${o.chartVersion ?? '1.18.0'}`, heritage: 'Helm' }),
    ...(o.extraLabels ?? {}),
  };
  const metadata: Json = {
    name,
    namespace,
    labels,
    annotations: {
      'meta.helm.sh/release-name': release,
      'meta.helm.sh/release-namespace': namespace,
      ...(o.annotations ?? {}),
    },
  };
  if (o.stored) {
    Object.assign(metadata, {
      uid: '6f1c1e0e-3c55-4c53-9a3f-2f0f6c8a7d11',
      resourceVersion: '184467',
      generation: 4,
      creationTimestamp: '2025-06-02T09:14:03Z',
    });
  }
  const selector = { matchLabels: labelsFor(o, release) };
  switch (o.kind) {
    case 'Deployment':
      return {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata,
        spec: {
          replicas: o.replicas ?? 1,
          selector,
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
          revisionHistoryLimit: 10,
          progressDeadlineSeconds: 600,
          template: podTemplate(o, release, 'Always'),
        },
      };
    case 'StatefulSet':
      return {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata,
        spec: {
          replicas: o.replicas ?? 1,
          selector,
          serviceName: name,
          podManagementPolicy: 'Parallel',
          updateStrategy: o.updateStrategy ?? { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
          revisionHistoryLimit: 10,
          persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
          template: podTemplate(o, release, 'Always'),
        },
      };
    case 'Job':
      return {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {
          ...metadata,
          annotations: {
            ...(metadata.annotations as Json),
            'helm.sh/hook': 'pre-install,pre-upgrade',
            'helm.sh/hook-weight': '1',
            'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
          },
        },
        spec: {
          parallelism: 1,
          completions: 1,
          backoffLimit: 6,
          ttlSecondsAfterFinished: 300,
          completionMode: 'NonIndexed',
          suspend: false,
          manualSelector: false,
          podReplacementPolicy: 'TerminatingOrFailed',
          template: podTemplate(o, release, 'OnFailure'),
        },
      };
    case 'CronJob':
      return {
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata,
        spec: {
          schedule: '0 0 * * *',
          concurrencyPolicy: 'Forbid',
          suspend: false,
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 1,
          jobTemplate: {
            metadata: { creationTimestamp: null, labels: labelsFor(o, release) },
            spec: { backoffLimit: 1, template: podTemplate(o, release, 'Never') },
          },
        },
      };
  }
}

/** One workload of a release as the official chart renders it: statsd runs no Airflow image and no
 * migration wait; Celery workers run `airflow celery worker`. */
export function chartComponent(o: WorkloadOptions): Json {
  const statsd = o.component === 'statsd';
  const obj = chartWorkload(statsd && !o.image ? { ...o, image: 'quay.io/prometheus/statsd-exporter:v0.28.0' } : o);
  const spec = (obj.spec as { template: { spec: { containers: Json[]; initContainers?: unknown[] } } }).template.spec;
  if (statsd) {
    delete spec.initContainers;
    for (const c of spec.containers) {
      delete c.env;
      c.args = ['--statsd.listen-udp=:9125'];
    }
  }
  if (o.component === 'worker') for (const c of spec.containers) c.args = ['bash', '-c', 'exec airflow celery worker'];
  return obj;
}
