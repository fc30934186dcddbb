// Server-side apply bookkeeping (metadata.managedFields) after the guard's own writes. An update
// makes its field manager the owner of every field it changed, so the guard's drain, hold and
// release (spec.replicas, spec.suspend, spec.paused, a partition) would leave it owning fields the
// deploy tool applies: a later server-side apply without force (Helm 4, kubectl --server-side) that
// sets one to another value then fails with a conflict naming the guard. The guard writes those
// fields on the tool's behalf, so it gives their ownership up again: the fields stay as written,
// owned by nobody, and the next apply takes them without a conflict.
import { escapePointerSegment, type JsonPatchOperation } from './hold.js';
import { isJsonObject } from './objects.js';

/** The guard's field manager: the name it sends (`fieldManager`) with every write. */
export const FIELD_MANAGER = 'airflow-downgrade-guard';

/** The top-level fields (FieldsV1 keys) whose ownership the guard gives up after writing them. */
export const DISOWNED_FIELDS: readonly string[] = ['f:spec'];

/**
 * A JSON Patch that takes `fields` out of the guard's update entries in `managedFields` (an entry left
 * owning nothing is removed), or undefined when the guard owns none of them. Each entry it touches
 * is tested first (manager, operation; the whole entry when it is removed), so the patch applies to
 * the live object only if those entries are still where and what they were: writers of other
 * entries (the controllers' status updates) do not get in its way, and their entries are kept.
 */
export function disownPatch(
  managedFields: unknown,
  manager: string = FIELD_MANAGER,
  fields: readonly string[] = DISOWNED_FIELDS,
): JsonPatchOperation[] | undefined {
  if (!Array.isArray(managedFields)) return undefined;
  const ops: JsonPatchOperation[] = [];
  let removed = 0;
  // From the last entry back, so removing one does not move those still to be patched.
  for (let i = managedFields.length - 1; i >= 0; i--) {
    const entry: unknown = managedFields[i];
    if (!isGuardUpdate(entry, manager)) continue;
    const owned = entry.fieldsV1 as Record<string, unknown>;
    const given = fields.filter((f) => Object.hasOwn(owned, f));
    if (given.length === 0) continue;
    const at = `/metadata/managedFields/${i}`;
    ops.push(
      { op: 'test', path: `${at}/manager`, value: manager },
      { op: 'test', path: `${at}/operation`, value: 'Update' },
    );
    if (Object.keys(owned).length > given.length) {
      for (const f of given) ops.push({ op: 'remove', path: `${at}/fieldsV1/${escapePointerSegment(f)}` });
    } else {
      ops.push({ op: 'test', path: `${at}/fieldsV1`, value: owned }, { op: 'remove', path: at });
      removed++;
    }
  }
  if (ops.length === 0) return undefined;
  if (removed < managedFields.length) return ops;
  // Every entry was the guard's: an empty list would leave managedFields as they are, one empty entry
  // clears them (the documented way to strip them), so nobody owns anything.
  return [...ops.filter((o) => o.op === 'test'), { op: 'replace', path: '/metadata/managedFields', value: [{}] }];
}

function isGuardUpdate(entry: unknown, manager: string): entry is Record<string, unknown> {
  return (
    isJsonObject(entry) &&
    entry.manager === manager &&
    entry.operation === 'Update' &&
    (entry.subresource === undefined || entry.subresource === '') &&
    isJsonObject(entry.fieldsV1)
  );
}
