// Safe reading of Kubernetes objects that arrive as untyped JSON.

export type JsonObject = Record<string, unknown>;

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'Job', 'CronJob'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a path of object keys, or undefined when any step is missing or not an object. */
export function valueAt(root: unknown, path: readonly string[]): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (!isJsonObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

export function objectAt(root: unknown, path: readonly string[]): JsonObject | undefined {
  const value = valueAt(root, path);
  return isJsonObject(value) ? value : undefined;
}

/** String-valued entries of a labels/annotations map; other values are ignored. */
export function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isJsonObject(value)) return out;
  for (const [key, v] of Object.entries(value)) if (typeof v === 'string') out[key] = v;
  return out;
}

export function labelsOf(object: unknown): Record<string, string> {
  return stringMap(valueAt(object, ['metadata', 'labels']));
}

export function annotationsOf(object: unknown): Record<string, string> {
  return stringMap(valueAt(object, ['metadata', 'annotations']));
}

/** Path of the pod template inside a workload of this kind. */
export function podTemplatePath(kind: WorkloadKind): string[] {
  return kind === 'CronJob' ? ['spec', 'jobTemplate', 'spec', 'template'] : ['spec', 'template'];
}

export function podTemplateOf(kind: WorkloadKind, object: unknown): JsonObject | undefined {
  return objectAt(object, podTemplatePath(kind));
}

export interface ContainerInfo {
  name: string;
  image: string;
}

/** The regular containers (not init containers) of a pod spec, with name and image. */
export function containersOf(podTemplate: unknown): ContainerInfo[] {
  const list = valueAt(podTemplate, ['spec', 'containers']);
  if (!Array.isArray(list)) return [];
  return list.flatMap((c) =>
    isJsonObject(c) && typeof c.name === 'string' && typeof c.image === 'string' ? [{ name: c.name, image: c.image }] : [],
  );
}

/** Kubernetes object names (DNS-1123 subdomain): safe to put into messages and commands. */
export function isValidObjectName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name);
}
