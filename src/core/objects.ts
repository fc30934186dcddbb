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

/**
 * The string value of `key` in the map at `path`, as `stringMap(valueAt(root, path))[key]` reads it
 * but without copying the map (the admission path reads single labels and annotations per request).
 */
export function stringAt(root: unknown, path: readonly string[], key: string): string | undefined {
  return stringIn(valueAt(root, path), key);
}

/** `stringMap(map)[key]` without the copy. */
export function stringIn(map: unknown, key: string): string | undefined {
  // '__proto__' as an own key (JSON.parse makes one) never survives the copy stringMap makes.
  if (!isJsonObject(map) || !Object.hasOwn(map, key) || key === '__proto__') return undefined;
  const value = map[key];
  return typeof value === 'string' ? value : undefined;
}

const LABELS_PATH = ['metadata', 'labels'] as const;
const ANNOTATIONS_PATH = ['metadata', 'annotations'] as const;

export function annotationsOf(object: unknown): Record<string, string> {
  return stringMap(valueAt(object, ANNOTATIONS_PATH));
}

export function labelMapOf(object: unknown): JsonObject | undefined {
  return objectAt(object, LABELS_PATH);
}

/** One annotation of an object (string values only), without copying its annotations. */
export function annotationAt(object: unknown, key: string): string | undefined {
  return stringAt(object, ANNOTATIONS_PATH, key);
}

const CRONJOB_TEMPLATE_PATH = ['spec', 'jobTemplate', 'spec', 'template'] as const;
const TEMPLATE_PATH = ['spec', 'template'] as const;

export function podTemplateOf(kind: WorkloadKind, object: unknown): JsonObject | undefined {
  return objectAt(object, kind === 'CronJob' ? CRONJOB_TEMPLATE_PATH : TEMPLATE_PATH);
}

export interface ContainerInfo {
  name: string;
  image: string;
}

/** The regular containers (not init containers) of a pod spec, with name and image. */
const CONTAINERS_PATH = ['spec', 'containers'] as const;

export function containersOf(podTemplate: unknown): ContainerInfo[] {
  const list = valueAt(podTemplate, CONTAINERS_PATH);
  if (!Array.isArray(list)) return [];
  const out: ContainerInfo[] = [];
  for (const c of list as unknown[]) {
    if (isJsonObject(c) && typeof c.name === 'string' && typeof c.image === 'string')
      out.push({ name: c.name, image: c.image });
  }
  return out;
}

/** Kubernetes object names (DNS-1123 subdomain): safe to put into messages and commands. */
export function isValidObjectName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name);
}
