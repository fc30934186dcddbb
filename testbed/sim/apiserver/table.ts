// Server-side printing (meta.k8s.io/v1 Table), which `kubectl get` asks for: the columns of the
// real server's printers for the kinds used here, NAME/AGE for the others.
import type { KubeObject } from '../types.js';

type Obj = Record<string, unknown>;
type Column = { name: string; type: string; format?: string; priority?: number; description?: string };
type Printer = { columns: Column[]; cells: (o: KubeObject) => unknown[] };

export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

function age(o: KubeObject): string {
  const created = o.metadata.creationTimestamp;
  return created ? humanDuration(Date.now() - Date.parse(created)) : '<unknown>';
}

function spec(o: KubeObject): Obj {
  return (o.spec ?? {}) as Obj;
}

function status(o: KubeObject): Obj {
  return (o.status ?? {}) as Obj;
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

function podContainers(podSpec: Obj | undefined): Obj[] {
  return (podSpec?.containers as Obj[] | undefined) ?? [];
}

function templateSpec(o: KubeObject): Obj | undefined {
  return ((spec(o).template as Obj | undefined)?.spec as Obj | undefined) ?? undefined;
}

function selectorString(selector: unknown): string {
  const s = (selector ?? {}) as {
    matchLabels?: Record<string, string>;
    matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
  };
  // Requirements sorted by key, as labels.Selector.String() prints them.
  const parts: Array<[string, string]> = Object.entries(s.matchLabels ?? {}).map(([k, v]) => [k, `${k}=${v}`]);
  for (const e of s.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    if (e.operator === 'In') parts.push([e.key, `${e.key} in (${values})`]);
    else if (e.operator === 'NotIn') parts.push([e.key, `${e.key} notin (${values})`]);
    else if (e.operator === 'Exists') parts.push([e.key, e.key]);
    else if (e.operator === 'DoesNotExist') parts.push([e.key, `!${e.key}`]);
  }
  parts.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return parts.length ? parts.map((p) => p[1]).join(',') : '<none>';
}

export { selectorString };

const NAME: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
};
const AGE: Column = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};
const CONTAINERS_WIDE: Column[] = [
  { name: 'Containers', type: 'string', priority: 1 },
  { name: 'Images', type: 'string', priority: 1 },
];

function containerCells(podSpec: Obj | undefined): string[] {
  const containers = podContainers(podSpec);
  return [containers.map((c) => String(c.name)).join(','), containers.map((c) => String(c.image)).join(',')];
}

function podStatusText(o: KubeObject): string {
  const st = status(o);
  let reason = (st.reason as string | undefined) ?? (st.phase as string | undefined) ?? 'Unknown';
  for (const cs of (st.initContainerStatuses as Obj[] | undefined) ?? []) {
    const state = (cs.state ?? {}) as Obj;
    const term = state.terminated as Obj | undefined;
    const waiting = state.waiting as Obj | undefined;
    if (term && term.exitCode !== 0) {
      reason = `Init:${String(term.reason ?? 'Error')}`;
      break;
    }
    if (!term) {
      reason =
        waiting?.reason && waiting.reason !== 'PodInitializing'
          ? `Init:${String(waiting.reason)}`
          : `Init:${(st.initContainerStatuses as Obj[]).indexOf(cs)}/${(st.initContainerStatuses as Obj[]).length}`;
      break;
    }
  }
  if (!reason.startsWith('Init:')) {
    for (const cs of (st.containerStatuses as Obj[] | undefined) ?? []) {
      const state = (cs.state ?? {}) as Obj;
      const waiting = state.waiting as Obj | undefined;
      const term = state.terminated as Obj | undefined;
      if (waiting?.reason) reason = String(waiting.reason);
      else if (term?.reason) reason = String(term.reason);
    }
  }
  if (o.metadata.deletionTimestamp) reason = 'Terminating';
  return reason;
}

const PRINTERS: Record<string, Printer> = {
  Pod: {
    columns: [
      NAME,
      { name: 'Ready', type: 'string' },
      { name: 'Status', type: 'string' },
      { name: 'Restarts', type: 'string' },
      AGE,
      { name: 'IP', type: 'string', priority: 1 },
      { name: 'Node', type: 'string', priority: 1 },
      { name: 'Nominated Node', type: 'string', priority: 1 },
      { name: 'Readiness Gates', type: 'string', priority: 1 },
    ],
    cells: (o) => {
      const statuses = (status(o).containerStatuses as Obj[] | undefined) ?? [];
      const total = podContainers(spec(o)).length;
      const ready = statuses.filter((c) => c.ready === true).length;
      const restarts = statuses.reduce((sum, c) => sum + num(c.restartCount), 0);
      return [
        o.metadata.name,
        `${ready}/${total}`,
        podStatusText(o),
        String(restarts),
        age(o),
        (status(o).podIP as string | undefined) ?? '<none>',
        (spec(o).nodeName as string | undefined) ?? '<none>',
        '<none>',
        '<none>',
      ];
    },
  },
  Deployment: {
    columns: [
      NAME,
      { name: 'Ready', type: 'string' },
      { name: 'Up-to-date', type: 'integer' },
      { name: 'Available', type: 'integer' },
      AGE,
      ...CONTAINERS_WIDE,
      { name: 'Selector', type: 'string', priority: 1 },
    ],
    cells: (o) => [
      o.metadata.name,
      `${num(status(o).readyReplicas)}/${num(spec(o).replicas)}`,
      num(status(o).updatedReplicas),
      num(status(o).availableReplicas),
      age(o),
      ...containerCells(templateSpec(o)),
      selectorString(spec(o).selector),
    ],
  },
  ReplicaSet: {
    columns: [
      NAME,
      { name: 'Desired', type: 'integer' },
      { name: 'Current', type: 'integer' },
      { name: 'Ready', type: 'integer' },
      AGE,
      ...CONTAINERS_WIDE,
      { name: 'Selector', type: 'string', priority: 1 },
    ],
    cells: (o) => [
      o.metadata.name,
      num(spec(o).replicas),
      num(status(o).replicas),
      num(status(o).readyReplicas),
      age(o),
      ...containerCells(templateSpec(o)),
      selectorString(spec(o).selector),
    ],
  },
  StatefulSet: {
    columns: [NAME, { name: 'Ready', type: 'string' }, AGE, ...CONTAINERS_WIDE],
    cells: (o) => [
      o.metadata.name,
      `${num(status(o).readyReplicas)}/${num(spec(o).replicas)}`,
      age(o),
      ...containerCells(templateSpec(o)),
    ],
  },
  Job: {
    columns: [
      NAME,
      { name: 'Status', type: 'string' },
      { name: 'Completions', type: 'string' },
      { name: 'Duration', type: 'string' },
      AGE,
      ...CONTAINERS_WIDE,
    ],
    cells: (o) => {
      const st = status(o);
      const conditions = (st.conditions as Obj[] | undefined) ?? [];
      const has = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
      const state = has('Complete')
        ? 'Complete'
        : has('Failed')
          ? 'Failed'
          : spec(o).suspend === true
            ? 'Suspended'
            : has('FailureTarget')
              ? 'FailureTarget'
              : 'Running';
      const start = st.startTime ? Date.parse(String(st.startTime)) : undefined;
      const end = st.completionTime ? Date.parse(String(st.completionTime)) : Date.now();
      return [
        o.metadata.name,
        state,
        `${num(st.succeeded)}/${num(spec(o).completions) || 1}`,
        start ? humanDuration(end - start) : '',
        age(o),
        ...containerCells(templateSpec(o)),
      ];
    },
  },
  CronJob: {
    columns: [
      NAME,
      { name: 'Schedule', type: 'string' },
      { name: 'Timezone', type: 'string' },
      { name: 'Suspend', type: 'boolean' },
      { name: 'Active', type: 'integer' },
      { name: 'Last Schedule', type: 'string' },
      AGE,
    ],
    cells: (o) => {
      const last = status(o).lastScheduleTime;
      return [
        o.metadata.name,
        String(spec(o).schedule ?? ''),
        (spec(o).timeZone as string | undefined) ?? '<none>',
        spec(o).suspend === true,
        ((status(o).active as unknown[] | undefined) ?? []).length,
        last ? humanDuration(Date.now() - Date.parse(String(last))) : '<none>',
        age(o),
      ];
    },
  },
  Namespace: {
    columns: [NAME, { name: 'Status', type: 'string' }, AGE],
    cells: (o) => [o.metadata.name, String(status(o).phase ?? 'Active'), age(o)],
  },
  Secret: {
    columns: [NAME, { name: 'Type', type: 'string' }, { name: 'Data', type: 'string' }, AGE],
    cells: (o) => [
      o.metadata.name,
      String(o.type ?? 'Opaque'),
      String(Object.keys((o.data ?? {}) as Obj).length),
      age(o),
    ],
  },
  ConfigMap: {
    columns: [NAME, { name: 'Data', type: 'string' }, AGE],
    cells: (o) => [
      o.metadata.name,
      String(Object.keys((o.data ?? {}) as Obj).length + Object.keys((o.binaryData ?? {}) as Obj).length),
      age(o),
    ],
  },
  Service: {
    columns: [
      NAME,
      { name: 'Type', type: 'string' },
      { name: 'Cluster-IP', type: 'string' },
      { name: 'External-IP', type: 'string' },
      { name: 'Port(s)', type: 'string' },
      AGE,
    ],
    cells: (o) => {
      const ports = ((spec(o).ports as Obj[] | undefined) ?? [])
        .map((p) => `${String(p.port)}/${String(p.protocol ?? 'TCP')}`)
        .join(',');
      return [
        o.metadata.name,
        String(spec(o).type ?? 'ClusterIP'),
        String(spec(o).clusterIP ?? '<none>'),
        '<none>',
        ports || '<none>',
        age(o),
      ];
    },
  },
  PersistentVolumeClaim: {
    columns: [
      NAME,
      { name: 'Status', type: 'string' },
      { name: 'Volume', type: 'string' },
      { name: 'Capacity', type: 'string' },
      { name: 'Access Modes', type: 'string' },
      { name: 'StorageClass', type: 'string' },
      AGE,
    ],
    cells: (o) => {
      const capacity = ((status(o).capacity as Obj | undefined) ?? {}).storage;
      const modes = ((status(o).accessModes as string[] | undefined) ?? [])
        .map(
          (m) =>
            ({ ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' })[m] ?? m,
        )
        .join(',');
      return [
        o.metadata.name,
        String(status(o).phase ?? 'Pending'),
        String(spec(o).volumeName ?? ''),
        String(capacity ?? ''),
        modes,
        String(spec(o).storageClassName ?? 'standard'),
        age(o),
      ];
    },
  },
  ServiceAccount: {
    columns: [NAME, { name: 'Secrets', type: 'string' }, AGE],
    cells: (o) => [o.metadata.name, String(((o.secrets as unknown[] | undefined) ?? []).length), age(o)],
  },
  Lease: {
    columns: [NAME, { name: 'Holder', type: 'string' }, AGE],
    cells: (o) => [o.metadata.name, String(spec(o).holderIdentity ?? ''), age(o)],
  },
  Event: {
    columns: [
      { name: 'Last Seen', type: 'string' },
      { name: 'Type', type: 'string' },
      { name: 'Reason', type: 'string' },
      { name: 'Object', type: 'string' },
      { name: 'Message', type: 'string' },
    ],
    cells: (o) => {
      const involved = (o.involvedObject ?? o.regarding ?? {}) as Obj;
      const last = (o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp) as string | undefined;
      return [
        last ? humanDuration(Date.now() - Date.parse(last)) : '<unknown>',
        String(o.type ?? ''),
        String(o.reason ?? ''),
        `${String(involved.kind ?? '').toLowerCase()}/${String(involved.name ?? '')}`,
        String(o.message ?? o.note ?? ''),
      ];
    },
  },
};

const DEFAULT_PRINTER: Printer = { columns: [NAME, AGE], cells: (o) => [o.metadata.name, age(o)] };

export function wantsTable(accept: string | undefined): boolean {
  const first = (accept ?? '').split(',')[0] ?? '';
  return first.replace(/\s+/g, '').includes('as=Table');
}

function rowObject(o: KubeObject, include: string | undefined): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function toTable(
  objects: KubeObject[],
  listMeta: Obj,
  includeObject: string | undefined,
  kind?: string,
): unknown {
  const printer = PRINTERS[kind ?? objects[0]?.kind ?? ''] ?? DEFAULT_PRINTER;
  const columnDefinitions = printer.columns.map((c) => ({
    name: c.name,
    type: c.type,
    format: c.format ?? '',
    description: c.description ?? '',
    priority: c.priority ?? 0,
  }));
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions,
    rows: objects.map((o) => {
      const row: Obj = { cells: printer.cells(o) };
      const object = rowObject(o, includeObject);
      if (object !== undefined) row.object = object;
      return row;
    }),
  };
}
