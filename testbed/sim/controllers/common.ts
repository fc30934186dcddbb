// Helpers shared by the simulated controllers: object access that tolerates odd input,
// optimistic-concurrency writes, pod predicates, conditions, hashes and graceful pod deletion.
import { createHash } from 'node:crypto';
import { Store, StoreError } from '../store.js';
import { RESOURCES } from '../resources.js';
import type { KubeObject, ResourceType } from '../types.js';

export type Json = Record<string, unknown>;

export interface Logger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const quietLogger: Logger = {
  debug() {},
  warn(obj, msg) {
    console.warn(`[sim-controllers] ${msg}`, obj);
  },
};

export function asRecord(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function asInt(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.trunc(value) : fallback;
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function specOf(obj: KubeObject): Json {
  return asRecord(obj.spec) ?? {};
}

export function statusOf(obj: KubeObject): Json {
  return asRecord(obj.status) ?? {};
}

export function objectKey(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

export function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

/** RFC 3339 with second precision, as the API server serialises metav1.Time. */
export function rfc3339(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export function controllerRef(obj: KubeObject): { kind: string; name: string; uid: string } | undefined {
  return obj.metadata.ownerReferences?.find((ref) => ref.controller === true);
}

export function isOwnedBy(obj: KubeObject, owner: KubeObject): boolean {
  const ref = controllerRef(obj);
  return ref !== undefined && ref.uid === owner.metadata.uid;
}

export function ownerReference(owner: KubeObject): NonNullable<KubeObject['metadata']['ownerReferences']>[number] {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Objects of a type in a namespace whose controlling owner is `owner`. */
export function ownedBy(store: Store, type: ResourceType, owner: KubeObject): KubeObject[] {
  return store.list(type, owner.metadata.namespace, (obj) => isOwnedBy(obj, owner)).items;
}

/**
 * Read-modify-write with optimistic concurrency: re-reads and retries on 409 Conflict.
 * `mutate` returns false to skip the write. Returns the stored object, or undefined when it is gone.
 */
export function updateWithRetry(
  store: Store,
  type: ResourceType,
  namespace: string | undefined,
  name: string,
  mutate: (obj: KubeObject) => boolean | void,
): KubeObject | undefined {
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = store.get(type, namespace, name);
    if (!current) return undefined;
    if (mutate(current) === false) return current;
    try {
      return store.update(type, current);
    } catch (err) {
      if (err instanceof StoreError && err.reason === 'Conflict') continue;
      if (err instanceof StoreError && err.reason === 'NotFound') return undefined;
      throw err;
    }
  }
  throw new Error(`${type.kind} ${namespace ?? ''}/${name}: still conflicting after 8 attempts`);
}

/** Replaces `.status` when it differs (the store skips no-op writes, so this never loops). */
export function writeStatus(store: Store, type: ResourceType, obj: KubeObject, status: Json): KubeObject | undefined {
  return updateWithRetry(store, type, obj.metadata.namespace, obj.metadata.name, (current) => {
    if (current.metadata.uid !== obj.metadata.uid) return false;
    if (JSON.stringify(current.status) === JSON.stringify(status)) return false;
    current.status = status;
  });
}

/** Drops the zero values of fields that are `omitempty` in the Go types. */
export function omitZero(status: Json, keys: string[]): Json {
  for (const key of keys) if (status[key] === 0 || status[key] === undefined) delete status[key];
  return status;
}

// ---- pods ----

export function podPhase(pod: KubeObject): string {
  return asString(statusOf(pod).phase) ?? 'Pending';
}

export function isTerminal(pod: KubeObject): boolean {
  const phase = podPhase(pod);
  return phase === 'Succeeded' || phase === 'Failed';
}

export function isTerminating(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

/** Counted as a replica by ReplicaSets and Jobs: neither finished nor being deleted. */
export function isActive(pod: KubeObject): boolean {
  return !isTerminal(pod) && !isTerminating(pod);
}

function readyCondition(pod: KubeObject): Json | undefined {
  return asArray(statusOf(pod).conditions)
    .map(asRecord)
    .find((c) => c?.type === 'Ready');
}

export function isPodReady(pod: KubeObject): boolean {
  return podPhase(pod) === 'Running' && readyCondition(pod)?.status === 'True';
}

/** Ready for at least minReadySeconds. */
export function isPodAvailable(pod: KubeObject, minReadySeconds: number, now = Date.now()): boolean {
  if (!isPodReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = Date.parse(asString(readyCondition(pod)?.lastTransitionTime) ?? '');
  return Number.isFinite(since) && since + minReadySeconds * 1000 <= now;
}

/** Milliseconds until a ready pod becomes available, for requeueing; undefined when not applicable. */
export function msUntilAvailable(pod: KubeObject, minReadySeconds: number, now = Date.now()): number | undefined {
  if (!isPodReady(pod) || minReadySeconds <= 0) return undefined;
  const since = Date.parse(asString(readyCondition(pod)?.lastTransitionTime) ?? '');
  if (!Number.isFinite(since)) return undefined;
  const left = since + minReadySeconds * 1000 - now;
  return left > 0 ? left + 10 : undefined;
}

export function terminationGraceSeconds(pod: KubeObject, fallback: number): number {
  return asInt(specOf(pod).terminationGracePeriodSeconds, fallback);
}

/**
 * Deletes a pod the way the API server does for a controller's DELETE: graceful (deletionTimestamp
 * = now + grace, the kubelet removes it) for a scheduled pod, at once for an unscheduled one or grace 0.
 */
export function deletePod(store: Store, pod: KubeObject, defaultGraceSeconds: number): void {
  const grace = Math.max(0, terminationGraceSeconds(pod, defaultGraceSeconds));
  const { namespace, name } = pod.metadata;
  const scheduled = typeof specOf(pod).nodeName === 'string' && specOf(pod).nodeName !== '';
  if ((grace === 0 || !scheduled || isTerminal(pod)) && !(pod.metadata.finalizers?.length ?? 0)) {
    try {
      store.remove(RESOURCES.pods, namespace, name);
    } catch (err) {
      if (!(err instanceof StoreError && err.reason === 'NotFound')) throw err;
    }
    return;
  }
  updateWithRetry(store, RESOURCES.pods, namespace, name, (current) => {
    if (current.metadata.uid !== pod.metadata.uid || current.metadata.deletionTimestamp) return false;
    current.metadata.deletionTimestamp = rfc3339(Date.now() + grace * 1000);
    current.metadata.deletionGracePeriodSeconds = grace;
  });
}

// ---- conditions ----

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastUpdateTime?: string;
  lastProbeTime?: string | null;
  [key: string]: unknown;
}

export function conditionsOf(obj: KubeObject): Condition[] {
  return asArray(statusOf(obj).conditions).filter((c): c is Condition => {
    const r = asRecord(c);
    return r !== undefined && typeof r.type === 'string' && typeof r.status === 'string';
  });
}

export function findCondition(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

export interface ConditionUpdate {
  type: string;
  status: Condition['status'];
  reason?: string;
  message?: string;
}

export type ConditionStyle = 'deployment' | 'job' | 'plain';

/**
 * Sets a condition, keeping lastTransitionTime when the status does not change and touching the
 * timestamps only when something changed (so recomputing an unchanged status writes nothing).
 */
export function setCondition(
  conditions: Condition[],
  next: ConditionUpdate,
  style: ConditionStyle,
  forceUpdateTime = false,
): Condition[] {
  const now = rfc3339();
  const existing = findCondition(conditions, next.type);
  if (
    existing &&
    existing.status === next.status &&
    existing.reason === next.reason &&
    existing.message === next.message
  ) {
    if (forceUpdateTime && style === 'deployment') existing.lastUpdateTime = now;
    return conditions;
  }
  const transition = !existing || existing.status !== next.status ? now : (existing.lastTransitionTime ?? now);
  const cond: Condition = { type: next.type, status: next.status };
  if (style === 'deployment') cond.lastUpdateTime = now;
  if (style === 'job') cond.lastProbeTime = now;
  cond.lastTransitionTime = transition;
  if (next.reason !== undefined) cond.reason = next.reason;
  if (next.message !== undefined) cond.message = next.message;
  if (existing) return conditions.map((c) => (c === existing ? cond : c));
  return [...conditions, cond];
}

// ---- hashes ----

/** JSON with sorted keys, so equal objects hash equally whatever their key order. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const rec = asRecord(value);
  if (rec) {
    const keys = Object.keys(rec)
      .filter((k) => rec[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(rec[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const SAFE_ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

/** Like Kubernetes' ComputeHash: fnv32a of the object, each decimal digit mapped to a safe character. */
export function computeHash(value: unknown): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(stableStringify(value), 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return [...String(hash)].map((d) => SAFE_ALPHANUMS[d.charCodeAt(0) % SAFE_ALPHANUMS.length]).join('');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Resolves an int-or-percent field (maxSurge, maxUnavailable) against a total, as intstr does. */
export function resolveIntOrPercent(value: unknown, fallback: string, total: number, roundUp: boolean): number {
  const v = value === undefined || value === null ? fallback : value;
  if (typeof v === 'number' && Number.isFinite(v)) return Math.max(0, Math.trunc(v));
  if (typeof v === 'string') {
    const pct = /^(\d+)%$/.exec(v);
    if (pct) {
      const exact = (Number(pct[1]) * total) / 100;
      return roundUp ? Math.ceil(exact) : Math.floor(exact);
    }
    if (/^\d+$/.test(v)) return Number(v);
  }
  throw new Error(`invalid int-or-percent value ${JSON.stringify(value)}`);
}

/** The pod template of a workload, or a reason why it is unusable. */
export function podTemplateOf(obj: KubeObject, path: Json = specOf(obj)): { template: Json } | { error: string } {
  const template = asRecord(path.template);
  if (!template) return { error: 'spec.template is missing' };
  const podSpec = asRecord(template.spec);
  const containers = asArray(podSpec?.containers);
  if (containers.length === 0) return { error: 'spec.template.spec.containers is empty' };
  if (!containers.every((c) => typeof asRecord(c)?.name === 'string')) return { error: 'a container has no name' };
  return { template };
}

export function templateLabels(template: Json): Record<string, string> {
  const labels = asRecord(asRecord(template.metadata)?.labels) ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A new pod object from a pod template (the caller sets the name and extra labels). */
export function podFromTemplate(
  template: Json,
  owner: KubeObject,
  naming: { name?: string; generateName?: string },
  extraLabels: Record<string, string> = {},
): KubeObject {
  const meta = asRecord(template.metadata) ?? {};
  const annotations = asRecord(meta.annotations);
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(naming.name ? { name: naming.name } : { name: '', generateName: naming.generateName }),
      namespace: owner.metadata.namespace,
      labels: { ...templateLabels(template), ...extraLabels },
      ownerReferences: [ownerReference(owner)],
    },
    spec: structuredClone(asRecord(template.spec) ?? {}),
    status: { phase: 'Pending', qosClass: 'BestEffort' },
  };
  if (annotations) pod.metadata.annotations = structuredClone(annotations) as Record<string, string>;
  return pod;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
