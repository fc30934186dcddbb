// Defaulting and the handful of validations the real server applies to the objects the guard and
// its tests create. Not the full API: only the fields controllers and kubectl (rollout status,
// set image, scale) rely on, and the errors a chart author typically hits.
import type { KubeObject, ResourceType } from '../types.js';
import { invalid } from './status.js';
import { matchesLabelSelectorObject, type LabelSelectorObject } from './selectors.js';

type Obj = Record<string, unknown>;

function obj(parent: Obj, key: string): Obj {
  const value = parent[key];
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Obj;
  const created: Obj = {};
  parent[key] = created;
  return created;
}

function setDefault(target: Obj, key: string, value: unknown): void {
  if (target[key] === undefined || target[key] === null) target[key] = value;
}

function defaultContainer(container: Obj): void {
  setDefault(container, 'terminationMessagePath', '/dev/termination-log');
  setDefault(container, 'terminationMessagePolicy', 'File');
  const image = typeof container.image === 'string' ? container.image : '';
  const tag = image.includes('@') ? '' : (image.split('/').pop()?.split(':')[1] ?? '');
  setDefault(container, 'imagePullPolicy', tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent');
  setDefault(container, 'resources', {});
  for (const port of (container.ports as Obj[] | undefined) ?? []) setDefault(port, 'protocol', 'TCP');
}

export function defaultPodSpec(spec: Obj): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'securityContext', {});
  setDefault(spec, 'schedulerName', 'default-scheduler');
  if (typeof spec.serviceAccountName === 'string' && spec.serviceAccount === undefined)
    spec.serviceAccount = spec.serviceAccountName;
  for (const c of (spec.containers as Obj[] | undefined) ?? []) defaultContainer(c);
  for (const c of (spec.initContainers as Obj[] | undefined) ?? []) defaultContainer(c);
}

function defaultTemplate(spec: Obj): void {
  const template = obj(spec, 'template');
  obj(template, 'metadata');
  defaultPodSpec(obj(template, 'spec'));
}

const DEFAULTERS: Record<string, (o: KubeObject) => void> = {
  Pod(o) {
    defaultPodSpec(obj(o, 'spec'));
    const status = obj(o, 'status');
    setDefault(status, 'phase', 'Pending');
    setDefault(status, 'qosClass', 'BestEffort');
  },
  Deployment(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'replicas', 1);
    setDefault(spec, 'revisionHistoryLimit', 10);
    setDefault(spec, 'progressDeadlineSeconds', 600);
    const strategy = obj(spec, 'strategy');
    setDefault(strategy, 'type', 'RollingUpdate');
    if (strategy.type === 'RollingUpdate') {
      const ru = obj(strategy, 'rollingUpdate');
      setDefault(ru, 'maxUnavailable', '25%');
      setDefault(ru, 'maxSurge', '25%');
    }
    defaultTemplate(spec);
    obj(o, 'status');
  },
  ReplicaSet(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'replicas', 1);
    defaultTemplate(spec);
    obj(o, 'status');
  },
  StatefulSet(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'replicas', 1);
    setDefault(spec, 'podManagementPolicy', 'OrderedReady');
    setDefault(spec, 'revisionHistoryLimit', 10);
    const strategy = obj(spec, 'updateStrategy');
    setDefault(strategy, 'type', 'RollingUpdate');
    if (strategy.type === 'RollingUpdate') setDefault(obj(strategy, 'rollingUpdate'), 'partition', 0);
    setDefault(spec, 'persistentVolumeClaimRetentionPolicy', { whenDeleted: 'Retain', whenScaled: 'Retain' });
    defaultTemplate(spec);
    obj(o, 'status');
  },
  Job(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'parallelism', 1);
    setDefault(spec, 'completions', 1);
    setDefault(spec, 'backoffLimit', 6);
    setDefault(spec, 'completionMode', 'NonIndexed');
    setDefault(spec, 'suspend', false);
    setDefault(spec, 'podReplacementPolicy', 'TerminatingOrFailed');
    defaultTemplate(spec);
    obj(o, 'status');
  },
  CronJob(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'suspend', false);
    setDefault(spec, 'concurrencyPolicy', 'Allow');
    setDefault(spec, 'successfulJobsHistoryLimit', 3);
    setDefault(spec, 'failedJobsHistoryLimit', 1);
    const jobTemplate = obj(spec, 'jobTemplate');
    obj(jobTemplate, 'metadata');
    const jobSpec = obj(jobTemplate, 'spec');
    setDefault(jobSpec, 'backoffLimit', 6);
    setDefault(jobSpec, 'completionMode', 'NonIndexed');
    setDefault(jobSpec, 'suspend', false);
    defaultTemplate(jobSpec);
    obj(o, 'status');
  },
  Secret(o) {
    setDefault(o, 'type', 'Opaque');
    // stringData is write-only: folded into data (base64) and never stored.
    const stringData = o.stringData as Record<string, string> | undefined;
    if (stringData) {
      const data = (o.data ??= {}) as Record<string, string>;
      for (const [key, value] of Object.entries(stringData))
        data[key] = Buffer.from(String(value), 'utf8').toString('base64');
      delete o.stringData;
    }
  },
  Service(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'type', 'ClusterIP');
    if (spec.type !== 'ExternalName') setDefault(spec, 'sessionAffinity', 'None');
    setDefault(spec, 'internalTrafficPolicy', 'Cluster');
    for (const port of (spec.ports as Obj[] | undefined) ?? []) {
      setDefault(port, 'protocol', 'TCP');
      setDefault(port, 'targetPort', port.port);
    }
    obj(o, 'status');
  },
  PersistentVolumeClaim(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'volumeMode', 'Filesystem');
    obj(o, 'status');
  },
  Ingress(o) {
    obj(o, 'spec');
    obj(o, 'status');
  },
  Namespace(o) {
    const spec = obj(o, 'spec');
    setDefault(spec, 'finalizers', ['kubernetes']);
    setDefault(obj(o, 'status'), 'phase', 'Active');
    // The real server labels every namespace with its own name (namespaceSelector relies on it).
    const labels = (o.metadata.labels ??= {});
    labels['kubernetes.io/metadata.name'] = o.metadata.name;
  },
};

export function applyDefaults(o: KubeObject): void {
  DEFAULTERS[o.kind]?.(o);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

type Cause = { field: string; message: string; reason?: string };

function validateContainers(prefix: string, podSpec: Obj | undefined, causes: Cause[]): void {
  const containers = podSpec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push({ field: `${prefix}.containers`, message: 'Required value', reason: 'FieldValueRequired' });
    return;
  }
  containers.forEach((c: Obj, i) => {
    if (typeof c.name !== 'string' || !DNS1123_LABEL.test(c.name)) {
      causes.push({
        field: `${prefix}.containers[${i}].name`,
        message: c.name
          ? `Invalid value: "${String(c.name)}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`
          : 'Required value',
        reason: c.name ? 'FieldValueInvalid' : 'FieldValueRequired',
      });
    }
    if (typeof c.image !== 'string' || c.image.trim() === '') {
      causes.push({
        field: `${prefix}.containers[${i}].image`,
        message: 'Required value',
        reason: 'FieldValueRequired',
      });
    }
  });
}

function validateSelector(spec: Obj, causes: Cause[]): void {
  const selector = spec.selector as LabelSelectorObject | undefined;
  if (
    !selector ||
    (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)
  ) {
    causes.push({ field: 'spec.selector', message: 'Required value', reason: 'FieldValueRequired' });
    return;
  }
  const labels = ((spec.template as Obj | undefined)?.metadata as Obj | undefined)?.labels as
    Record<string, string> | undefined;
  if (!matchesLabelSelectorObject(labels ?? {}, selector)) {
    causes.push({
      field: 'spec.template.metadata.labels',
      message: `Invalid value: ${JSON.stringify(labels ?? {})}: \`selector\` does not match template \`labels\``,
    });
  }
}

export function validateObject(type: ResourceType, o: KubeObject): void {
  const causes: Cause[] = [];
  const name = o.metadata.name;
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
    causes.push({
      field: 'metadata.name',
      message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    });
  }
  const spec = o.spec as Obj | undefined;
  switch (o.kind) {
    case 'Pod':
      validateContainers('spec', spec, causes);
      break;
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
      validateSelector(spec ?? {}, causes);
      validateContainers('spec.template.spec', (spec?.template as Obj | undefined)?.spec as Obj | undefined, causes);
      if (typeof spec?.replicas === 'number' && spec.replicas < 0) {
        causes.push({
          field: 'spec.replicas',
          message: `Invalid value: ${spec.replicas}: must be greater than or equal to 0`,
        });
      }
      break;
    case 'Job': {
      const podSpec = (spec?.template as Obj | undefined)?.spec as Obj | undefined;
      validateContainers('spec.template.spec', podSpec, causes);
      const policy = podSpec?.restartPolicy;
      if (policy !== 'Never' && policy !== 'OnFailure') {
        causes.push({
          field: 'spec.template.spec.restartPolicy',
          message: `Unsupported value: "${String(policy)}": supported values: "OnFailure", "Never"`,
          reason: 'FieldValueNotSupported',
        });
      }
      break;
    }
    case 'CronJob':
      if (typeof spec?.schedule !== 'string' || spec.schedule.trim() === '') {
        causes.push({ field: 'spec.schedule', message: 'Required value', reason: 'FieldValueRequired' });
      }
      validateContainers(
        'spec.jobTemplate.spec.template.spec',
        (((spec?.jobTemplate as Obj | undefined)?.spec as Obj | undefined)?.template as Obj | undefined)?.spec as
          Obj | undefined,
        causes,
      );
      break;
  }
  if (causes.length > 0) throw invalid(type, name, causes);
}
