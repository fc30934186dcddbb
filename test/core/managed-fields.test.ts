// The guard gives up ownership of the spec fields it wrote (drain, hold, release), so a deploy tool's
// next server-side apply without force takes them back instead of failing with a conflict.
import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { disownPatch, FIELD_MANAGER } from '../../src/core/managed-fields.js';
import { GUARD_NAME } from '../../src/install/names.js';

type Entry = Record<string, unknown>;

const helmApply: Entry = {
  manager: 'helm',
  operation: 'Apply',
  apiVersion: 'apps/v1',
  time: '2026-12-03T10:00:00Z',
  fieldsType: 'FieldsV1',
  fieldsV1: { 'f:spec': { 'f:template': {} }, 'f:metadata': { 'f:labels': {} } },
};
const controllerStatus: Entry = {
  manager: 'kube-controller-manager',
  operation: 'Update',
  apiVersion: 'apps/v1',
  time: '2026-12-03T10:00:01Z',
  fieldsType: 'FieldsV1',
  fieldsV1: { 'f:status': { 'f:replicas': {} } },
  subresource: 'status',
};
const guardDrain = (fieldsV1: Entry): Entry => ({
  manager: FIELD_MANAGER,
  operation: 'Update',
  apiVersion: 'apps/v1',
  time: '2026-12-03T10:00:02Z',
  fieldsType: 'FieldsV1',
  fieldsV1,
});
const REPLICAS = { 'f:spec': { 'f:replicas': {} } };
const ANNOTATION = { 'f:metadata': { 'f:annotations': { 'f:airflow-downgrade-guard/drained': {} } } };

function applied(managedFields: Entry[], ops = disownPatch(managedFields)): Entry[] {
  if (!ops) throw new Error('no patch');
  const object = { metadata: { name: 'airflow-scheduler', managedFields } };
  return fastJsonPatch.applyPatch(structuredClone(object), ops as never, true, false).newDocument.metadata
    .managedFields;
}

describe('disownPatch', () => {
  it('is the name the API server records for the guard (its User-Agent product)', () => {
    expect(FIELD_MANAGER).toBe(GUARD_NAME);
  });

  it('removes an entry of the guard owning only spec fields; every other entry kept as it was', () => {
    const fields = [helmApply, controllerStatus, guardDrain(REPLICAS)];
    expect(applied(fields)).toEqual([helmApply, controllerStatus]);
  });

  it("keeps the guard's ownership of its own annotations, gives up spec", () => {
    const fields = [helmApply, guardDrain({ ...REPLICAS, ...ANNOTATION })];
    expect(applied(fields)).toEqual([helmApply, guardDrain(ANNOTATION)]);
  });

  it('nothing to give up: no patch (no entry of the guard, only annotations, an apply of the guard, a subresource)', () => {
    expect(disownPatch([helmApply, controllerStatus])).toBeUndefined();
    expect(disownPatch([helmApply, guardDrain(ANNOTATION)])).toBeUndefined();
    expect(disownPatch([helmApply, { ...guardDrain(REPLICAS), operation: 'Apply' }])).toBeUndefined();
    expect(disownPatch([helmApply, { ...guardDrain(REPLICAS), subresource: 'scale' }])).toBeUndefined();
    expect(disownPatch([helmApply, { ...guardDrain(REPLICAS), manager: 'helm' }])).toBeUndefined();
    expect(disownPatch(undefined)).toBeUndefined(); // the simulated cluster keeps none
    expect(disownPatch([helmApply, { manager: FIELD_MANAGER, operation: 'Update' }])).toBeUndefined();
  });

  it('several entries of the guard (another apiVersion): each patched, indices valid as it goes', () => {
    const v1beta = { ...guardDrain({ ...REPLICAS, ...ANNOTATION }), apiVersion: 'apps/v1beta2' };
    const fields = [guardDrain(REPLICAS), helmApply, v1beta, controllerStatus];
    expect(applied(fields)).toEqual([helmApply, { ...v1beta, fieldsV1: ANNOTATION }, controllerStatus]);
  });

  it('refused when the entries moved since they were read (another entry came before them)', () => {
    const read = [helmApply, guardDrain(REPLICAS)];
    const ops = disownPatch(read);
    const live = [helmApply, controllerStatus, guardDrain(REPLICAS)];
    expect(() => applied(live, ops)).toThrow();
  });

  it('refused when the entry it removes owns more by now (the guard wrote again meanwhile)', () => {
    const ops = disownPatch([helmApply, guardDrain(REPLICAS)]);
    const live = [helmApply, guardDrain({ 'f:spec': { 'f:replicas': {}, 'f:paused': {} } })];
    expect(() => applied(live, ops)).toThrow();
  });

  it('the guard the only manager: managedFields cleared (one empty entry), as an empty list would change nothing', () => {
    const ops = disownPatch([guardDrain(REPLICAS)]);
    expect(ops?.at(-1)).toEqual({ op: 'replace', path: '/metadata/managedFields', value: [{}] });
    expect(applied([guardDrain(REPLICAS)], ops)).toEqual([{}]);
  });
});
