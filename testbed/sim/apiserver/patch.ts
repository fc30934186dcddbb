// The four PATCH content types of the real API server: JSON Patch (RFC 6902), JSON merge patch
// (RFC 7386), strategic merge patch (merge keys of the built-in types kubectl touches) and
// server-side apply (approximated as a strategic merge of the applied fields).
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';

type Json = unknown;
type JsonObject = Record<string, unknown>;

export class PatchError extends Error {}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function applyJsonPatch(target: Json, patch: unknown): Json {
  if (!Array.isArray(patch)) throw new PatchError('json patch must be an array of operations');
  try {
    const doc = structuredClone(target);
    return fastJsonPatch.applyPatch(doc, patch as Operation[], true, true).newDocument;
  } catch (err) {
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
    throw new PatchError(message);
  }
}

export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

// patchMergeKey of the list fields in the built-in types (k8s.io/api), by field name.
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  ownerReferences: 'uid',
  conditions: 'type',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
  schedulingGates: 'name',
  webhooks: 'name',
};
// Lists of scalars merged as sets (patchStrategy=merge).
const MERGED_SCALAR_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, original: unknown[], patch: unknown[]): string | undefined {
  if (field === 'ports') {
    // Container ports merge on containerPort, Service ports on port.
    const sample = [...patch, ...original].find(isObject);
    if (!sample) return 'containerPort';
    return 'containerPort' in sample ? 'containerPort' : 'port';
  }
  return MERGE_KEYS[field];
}

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVE = '$deleteFromPrimitiveList/';

export function applyStrategicMergePatch(target: Json, patch: Json): Json {
  return mergeMap(isObject(target) ? target : {}, patch, '');
}

function mergeMap(original: JsonObject, patch: Json, field: string): Json {
  if (!isObject(patch)) {
    throw new PatchError(`strategic merge patch for ${field || 'the object'} must be an object`);
  }
  const directive = patch[DIRECTIVE];
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const { [DIRECTIVE]: _d, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (directive !== undefined && directive !== 'merge') {
    throw new PatchError(`Unknown patch type: ${String(directive)}`);
  }
  const result: JsonObject = structuredClone(original);
  const retain = patch[RETAIN_KEYS];
  if (retain !== undefined) {
    if (!Array.isArray(retain)) throw new PatchError('$retainKeys must be a list of field names');
    for (const key of Object.keys(result)) if (!retain.includes(key)) delete result[key];
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key === DIRECTIVE || key === RETAIN_KEYS || key.startsWith(SET_ORDER)) continue;
    if (key.startsWith(DELETE_FROM_PRIMITIVE)) {
      const listKey = key.slice(DELETE_FROM_PRIMITIVE.length);
      const current = result[listKey];
      if (Array.isArray(current) && Array.isArray(value)) {
        result[listKey] = current.filter((item) => !value.includes(item));
      }
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const merged = mergeValue(result[key], value, key);
    if (merged === undefined) delete result[key];
    else result[key] = merged;
  }
  return result;
}

function mergeValue(original: unknown, patch: unknown, field: string): unknown {
  if (isObject(patch)) return mergeMap(isObject(original) ? original : {}, patch, field);
  if (Array.isArray(patch)) return mergeList(Array.isArray(original) ? original : [], patch, field);
  return patch;
}

function mergeList(original: unknown[], patch: unknown[], field: string): unknown[] {
  const replaceAll = patch.some((item) => isObject(item) && item[DIRECTIVE] === 'replace');
  if (replaceAll) {
    return patch.filter((item) => !(isObject(item) && item[DIRECTIVE] === 'replace')).map(stripDirectives);
  }
  if (MERGED_SCALAR_LISTS.has(field)) {
    const out = [...original];
    for (const item of patch) if (!out.includes(item)) out.push(item);
    return out;
  }
  const mergeKey = mergeKeyFor(field, original, patch);
  if (!mergeKey) return patch.map(stripDirectives);
  const result = original.map((item) => structuredClone(item));
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError(`${field}: list items must be objects with the merge key "${mergeKey}"`);
    const key = item[mergeKey];
    if (key === undefined)
      throw new PatchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    const index = result.findIndex((existing) => isObject(existing) && existing[mergeKey] === key);
    if (item[DIRECTIVE] === 'delete') {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    if (index >= 0) result[index] = mergeMap(result[index] as JsonObject, item, field);
    else result.push(stripDirectives(item));
  }
  return result;
}

function stripDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripDirectives);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === DIRECTIVE || key === RETAIN_KEYS || key.startsWith(SET_ORDER) || key.startsWith(DELETE_FROM_PRIMITIVE))
      continue;
    if (inner === null) continue;
    out[key] = stripDirectives(inner);
  }
  return out;
}

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

export type PatchType = keyof typeof PATCH_TYPES;

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const base = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  for (const [name, media] of Object.entries(PATCH_TYPES)) if (media === base) return name as PatchType;
  if (base === 'application/apply-patch+json' || base === 'application/apply-patch+cbor') return 'apply';
  return undefined;
}

export function applyPatch(type: PatchType, target: Json, patch: Json): Json {
  switch (type) {
    case 'json':
      return applyJsonPatch(target, patch);
    case 'merge':
      return applyMergePatch(target, patch);
    case 'strategic':
    case 'apply':
      return applyStrategicMergePatch(target, patch);
  }
}
