// JSON Patches (RFC 6902) that hold a workload's rollout and record exactly what they changed,
// and the inverse that restores it. Patches apply cleanly to the object as admitted: missing
// parents are added whole, and `remove` is only emitted for members that exist.
import { ANNOTATIONS, HOLD_ANNOTATIONS } from './config.js';
import { annotationAt, isJsonObject, valueAt, WORKLOAD_KINDS, type WorkloadKind } from './objects.js';

/** The RFC 6902 operations the guard writes (admission patches and the coordinator's). */
export type JsonPatchOperation =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown };
/** The same type under the name the Kubernetes adapters use. */
export type JsonPatchOp = JsonPatchOperation;

/** One field the hold changed: its JSON Pointer, whether it existed before, and its previous value. */
export interface HoldChange {
  path: string;
  existed: boolean;
  previous?: unknown;
  held: unknown;
}

export interface HoldRecord {
  kind: WorkloadKind;
  changes: HoldChange[];
  /** Why the hold looks the way it does, e.g. a StatefulSet with OnDelete. */
  notes?: string[];
}

export interface HoldTarget {
  operationId: string;
  fromVersion: string;
  toVersion: string;
  fromRevision?: string;
  toRevision: string;
}

/**
 * Partition for a held StatefulSet: above any ordinal the set can have, so even an autoscaler
 * (KEDA on Celery workers) raising replicas during the hold creates no pod of the held template.
 */
export const HOLD_PARTITION = 2147483647;

export function escapePointerSegment(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function unescapePointerSegment(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function pointer(segments: readonly string[]): string {
  return segments.map((s) => `/${escapePointerSegment(s)}`).join('');
}

function segmentsOf(path: string): string[] {
  return path.split('/').slice(1).map(unescapePointerSegment);
}

function hasMember(root: unknown, segments: readonly string[]): boolean {
  const parent = valueAt(root, segments.slice(0, -1));
  const last = segments[segments.length - 1];
  return isJsonObject(parent) && last !== undefined && Object.hasOwn(parent, last);
}

/** Ops that set `value` at `segments`, adding the first missing parent as a whole nested object. */
export function setOps(root: unknown, segments: readonly string[], value: unknown): JsonPatchOperation[] {
  for (let depth = 1; depth < segments.length; depth++) {
    if (!isJsonObject(valueAt(root, segments.slice(0, depth)))) {
      let nested: unknown = value;
      for (let i = segments.length - 1; i >= depth; i--) nested = { [segments[i] as string]: nested };
      return [{ op: 'add', path: pointer(segments.slice(0, depth)), value: nested }];
    }
  }
  return [{ op: 'add', path: pointer(segments), value }];
}

/** The change at `segments`, or at its first missing parent (so a release removes what the hold added, whole). */
function change(object: unknown, segments: string[], held: unknown): HoldChange {
  for (let depth = 1; depth < segments.length; depth++) {
    if (!isJsonObject(valueAt(object, segments.slice(0, depth)))) {
      let nested: unknown = held;
      for (let i = segments.length - 1; i >= depth; i--) nested = { [segments[i] as string]: nested };
      return { path: pointer(segments.slice(0, depth)), existed: false, held: nested };
    }
  }
  const existed = hasMember(object, segments);
  const c: HoldChange = { path: pointer(segments), existed, held };
  if (existed) c.previous = valueAt(object, segments);
  return c;
}

function statefulSetChanges(object: unknown, operation: 'CREATE' | 'UPDATE', notes: string[]): HoldChange[] {
  if (operation === 'CREATE') {
    // A new StatefulSet has no older revision to keep: a partition would not stop its first pods.
    notes.push('new StatefulSet: held at 0 replicas');
    return [change(object, ['spec', 'replicas'], 0)];
  }
  const changes: HoldChange[] = [];
  if (valueAt(object, ['spec', 'updateStrategy', 'type']) === 'OnDelete') {
    // OnDelete rolls nothing by itself, but any pod that is deleted or evicted would come back with
    // the held template; a RollingUpdate partition recreates it at the current revision instead.
    notes.push('updateStrategy OnDelete switched to RollingUpdate with a partition for the hold');
    changes.push(change(object, ['spec', 'updateStrategy', 'type'], 'RollingUpdate'));
  }
  changes.push(change(object, ['spec', 'updateStrategy', 'rollingUpdate', 'partition'], HOLD_PARTITION));
  return changes;
}

function holdChanges(
  kind: WorkloadKind,
  object: unknown,
  operation: 'CREATE' | 'UPDATE',
  notes: string[],
): HoldChange[] {
  switch (kind) {
    case 'Deployment':
      return [change(object, ['spec', 'paused'], true)];
    case 'StatefulSet':
      return statefulSetChanges(object, operation, notes);
    case 'Job':
    case 'CronJob':
      return [change(object, ['spec', 'suspend'], true)];
  }
}

// The only fields a hold changes: a record (user-editable, it is an annotation) naming others is ignored.
const HOLD_PATHS = new Set([
  '/spec/paused',
  '/spec/suspend',
  '/spec/replicas',
  '/spec/updateStrategy',
  '/spec/updateStrategy/type',
  '/spec/updateStrategy/rollingUpdate',
  '/spec/updateStrategy/rollingUpdate/partition',
]);

/** The hold record stored on an object, or undefined when there is none or it is unreadable. */
export function readHoldRecord(object: unknown): HoldRecord | undefined {
  const text = annotationAt(object, ANNOTATIONS.hold);
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isJsonObject(parsed) || !Array.isArray(parsed.changes)) return undefined;
    const changes = parsed.changes.filter(
      (c): c is HoldChange =>
        isJsonObject(c) && typeof c.path === 'string' && HOLD_PATHS.has(c.path) && typeof c.existed === 'boolean',
    );
    const kind = WORKLOAD_KINDS.find((k) => k === parsed.kind);
    if (!kind) return undefined;
    const notes = Array.isArray(parsed.notes) ? parsed.notes.filter((n): n is string => typeof n === 'string') : [];
    return { kind, changes, ...(notes.length > 0 ? { notes } : {}) };
  } catch {
    return undefined;
  }
}

/** An object already held keeps the previous values of its first hold, not the held ones. */
function keepOriginalValues(changes: HoldChange[], earlier: HoldRecord | undefined): HoldChange[] {
  if (!earlier) return changes;
  return changes.map((c) => {
    const first = earlier.changes.find((e) => e.path === c.path);
    return first ? { ...first, held: c.held } : c;
  });
}

function annotationOps(object: unknown, values: Record<string, string>): JsonPatchOperation[] {
  if (!isJsonObject(valueAt(object, ['metadata', 'annotations']))) {
    return setOps(object, ['metadata', 'annotations'], values);
  }
  return Object.entries(values).map(([key, value]) => ({
    op: 'add',
    path: pointer(['metadata', 'annotations', key]),
    value,
  }));
}

/** The spec changes that hold the rollout (original values kept across holds), and their record. */
function heldSpec(
  kind: WorkloadKind,
  object: unknown,
  operation: 'CREATE' | 'UPDATE',
): { patch: JsonPatchOperation[]; record: HoldRecord } {
  const notes: string[] = [];
  const changes = keepOriginalValues(holdChanges(kind, object, operation, notes), readHoldRecord(object));
  const record: HoldRecord = { kind, changes, ...(notes.length > 0 ? { notes } : {}) };
  const patch: JsonPatchOperation[] = [];
  for (const c of changes) patch.push(...setOps(object, segmentsOf(c.path), c.held));
  return { patch, record };
}

/** The patch that holds this workload's rollout and records the hold and its operation. */
export function holdPatch(
  kind: WorkloadKind,
  object: unknown,
  target: HoldTarget,
  operation: 'CREATE' | 'UPDATE',
): { patch: JsonPatchOperation[]; record: HoldRecord } {
  const { patch, record } = heldSpec(kind, object, operation);
  const annotations: Record<string, string> = {
    [ANNOTATIONS.hold]: JSON.stringify(record),
    [ANNOTATIONS.operation]: target.operationId,
    [ANNOTATIONS.fromVersion]: target.fromVersion,
    [ANNOTATIONS.toVersion]: target.toVersion,
    [ANNOTATIONS.toRevision]: target.toRevision,
  };
  if (target.fromRevision !== undefined) annotations[ANNOTATIONS.fromRevision] = target.fromRevision;
  patch.push(...annotationOps(object, annotations));
  // Held again after a return: the object is part of a downgrade again, not of the return.
  // Held before for a resolution: now its target is known.
  for (const key of [ANNOTATIONS.returned, ANNOTATIONS.resolve])
    if (annotationAt(object, key) !== undefined)
      patch.push({ op: 'remove', path: pointer(['metadata', 'annotations', key]) });
  return { patch, record };
}

/** What a hold for a resolution names: the image to resolve, and the current point when admission knew it. */
export interface ResolveTarget {
  image: string;
  /** Known when only the current point was unknown at admission. */
  toVersion?: string;
  fromVersion?: string;
  fromRevision?: string;
}

/**
 * The patch that holds a workload whose target version could not be told at admission: the same
 * hold as a downgrade's, naming the image to resolve instead of an operation (the coordinator
 * resolves it, then releases the hold or turns it into a downgrade's).
 */
export function resolveHoldPatch(
  kind: WorkloadKind,
  object: unknown,
  target: ResolveTarget,
  operation: 'CREATE' | 'UPDATE',
): { patch: JsonPatchOperation[]; record: HoldRecord } {
  const { patch, record } = heldSpec(kind, object, operation);
  const annotations: Record<string, string> = {
    [ANNOTATIONS.hold]: JSON.stringify(record),
    [ANNOTATIONS.resolve]: target.image,
  };
  if (target.toVersion !== undefined) annotations[ANNOTATIONS.toVersion] = target.toVersion;
  if (target.fromVersion !== undefined) annotations[ANNOTATIONS.fromVersion] = target.fromVersion;
  if (target.fromRevision !== undefined) annotations[ANNOTATIONS.fromRevision] = target.fromRevision;
  patch.push(...annotationOps(object, annotations));
  // An earlier hold's operation and target (or a return marker) no longer describe this object.
  const stale: string[] = [ANNOTATIONS.operation, ANNOTATIONS.toRevision, ANNOTATIONS.returned];
  if (target.toVersion === undefined) stale.push(ANNOTATIONS.toVersion);
  if (target.fromVersion === undefined) stale.push(ANNOTATIONS.fromVersion);
  if (target.fromRevision === undefined) stale.push(ANNOTATIONS.fromRevision);
  for (const key of stale)
    if (annotationAt(object, key) !== undefined)
      patch.push({ op: 'remove', path: pointer(['metadata', 'annotations', key]) });
  return { patch, record };
}

/**
 * A hold for a resolution turned into a downgrade's: the operation annotations (holdPatch's) and what
 * the resolution found; the held fields and their record stay as admitted.
 */
export function resolvedHoldPatch(object: unknown, target: HoldTarget, resolved: string): JsonPatchOperation[] {
  const annotations: Record<string, string> = {
    [ANNOTATIONS.operation]: target.operationId,
    [ANNOTATIONS.fromVersion]: target.fromVersion,
    [ANNOTATIONS.toVersion]: target.toVersion,
    [ANNOTATIONS.toRevision]: target.toRevision,
    [ANNOTATIONS.resolved]: resolved,
  };
  if (target.fromRevision !== undefined) annotations[ANNOTATIONS.fromRevision] = target.fromRevision;
  const patch = annotationOps(object, annotations);
  if (annotationAt(object, ANNOTATIONS.resolve) !== undefined)
    patch.push({ op: 'remove', path: pointer(['metadata', 'annotations', ANNOTATIONS.resolve]) });
  return patch;
}

/** The image a hold for a resolution names; undefined when the object is not held for one. */
export function readResolveTarget(object: unknown): ResolveTarget | undefined {
  if (readHoldRecord(object) === undefined) return undefined;
  const image = annotationAt(object, ANNOTATIONS.resolve);
  if (image === undefined || annotationAt(object, ANNOTATIONS.operation) !== undefined) return undefined;
  const toVersion = annotationAt(object, ANNOTATIONS.toVersion);
  const fromVersion = annotationAt(object, ANNOTATIONS.fromVersion);
  const fromRevision = annotationAt(object, ANNOTATIONS.fromRevision);
  return {
    image,
    ...(toVersion !== undefined ? { toVersion } : {}),
    ...(fromVersion !== undefined ? { fromVersion } : {}),
    ...(fromRevision !== undefined ? { fromRevision } : {}),
  };
}

/**
 * The operation a hold names, read back from the annotations holdPatch writes (its inverse):
 * undefined when the object carries no hold record or the annotations are incomplete.
 */
export function readHoldTarget(object: unknown): HoldTarget | undefined {
  if (readHoldRecord(object) === undefined) return undefined;
  const operationId = annotationAt(object, ANNOTATIONS.operation);
  const fromVersion = annotationAt(object, ANNOTATIONS.fromVersion);
  const toVersion = annotationAt(object, ANNOTATIONS.toVersion);
  const toRevision = annotationAt(object, ANNOTATIONS.toRevision);
  const fromRevision = annotationAt(object, ANNOTATIONS.fromRevision);
  if (operationId === undefined || fromVersion === undefined || toVersion === undefined || toRevision === undefined)
    return undefined;
  return { operationId, fromVersion, toVersion, ...(fromRevision !== undefined ? { fromRevision } : {}), toRevision };
}

/** Moves a held object to another operation (a repeated downgrade's fresh id); nothing else changes. */
export function holdOperationPatch(object: unknown, operationId: string): JsonPatchOperation[] {
  if (readHoldTarget(object) === undefined) return [];
  return [{ op: 'add', path: pointer(['metadata', 'annotations', ANNOTATIONS.operation]), value: operationId }];
}

/**
 * The patch for a held object changed back to its from-version: the hold is undone (releasePatch)
 * and the object is marked as returned from `operationId`.
 */
export function returnPatch(
  object: unknown,
  record: HoldRecord | undefined,
  operationId: string,
): JsonPatchOperation[] {
  const patch = releasePatch(object, record);
  const marker = { [ANNOTATIONS.returned]: operationId };
  const annotationsRemain = isJsonObject(valueAt(object, ['metadata', 'annotations']));
  patch.push(
    ...(annotationsRemain
      ? [{ op: 'add' as const, path: pointer(['metadata', 'annotations', ANNOTATIONS.returned]), value: operationId }]
      : setOps(object, ['metadata', 'annotations'], marker)),
  );
  return patch;
}

/** The operation a workload returned from (the webhook's marker), if any. */
export function readReturnedFrom(object: unknown): string | undefined {
  return annotationAt(object, ANNOTATIONS.returned);
}

/** Removes the returned marker (the coordinator, once the return is handled). */
export function clearReturnedPatch(object: unknown): JsonPatchOperation[] {
  return readReturnedFrom(object) === undefined
    ? []
    : [{ op: 'remove', path: pointer(['metadata', 'annotations', ANNOTATIONS.returned]) }];
}

/**
 * The patch that undoes a hold: restores each recorded field to its previous value (or removes it
 * when it did not exist) and removes the guard's hold annotations. `record` defaults to the one on
 * the object; pass another (e.g. from oldObject) when the object lost its annotation.
 */
export function releasePatch(
  object: unknown,
  record: HoldRecord | undefined = readHoldRecord(object),
): JsonPatchOperation[] {
  const patch: JsonPatchOperation[] = [];
  for (const c of record?.changes ?? []) {
    const segments = segmentsOf(c.path);
    if (c.existed) patch.push(...setOps(object, segments, c.previous));
    else if (hasMember(object, segments)) patch.push({ op: 'remove', path: c.path });
  }
  for (const key of HOLD_ANNOTATIONS) {
    if (annotationAt(object, key) !== undefined)
      patch.push({ op: 'remove', path: pointer(['metadata', 'annotations', key]) });
  }
  return patch;
}

/** Whether the object carries a guard hold (the hold annotation). */
export function isHeld(object: unknown): boolean {
  return annotationAt(object, ANNOTATIONS.hold) !== undefined;
}
