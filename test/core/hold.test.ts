import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import {
  HOLD_PARTITION,
  clearReturnedPatch,
  escapePointerSegment,
  holdOperationPatch,
  holdPatch,
  readHoldRecord,
  readHoldTarget,
  readReturnedFrom,
  releasePatch,
  returnPatch,
  setOps,
  type JsonPatchOperation,
} from '../../src/core/hold.js';
import { chartWorkload, type Kind } from '../fixtures/admission/builders.js';

const { applyPatch } = fastJsonPatch;
const target = {
  operationId: 'dg-0123456789abcdef',
  fromVersion: '3.1.0',
  toVersion: '3.0.2',
  fromRevision: 'cc92b33c6709',
  toRevision: '29ce7909c52b',
};

/** Applies like the API server does: every op must validate against the object. */
function apply<T>(object: T, patch: JsonPatchOperation[]): T {
  return applyPatch(structuredClone(object), patch as any, true, false).newDocument as T;
}

describe('holdPatch', () => {
  it('escapes / in annotation keys', () => {
    expect(escapePointerSegment('airflow-downgrade-guard/hold')).toBe('airflow-downgrade-guard~1hold');
    expect(escapePointerSegment('a~b')).toBe('a~0b');
  });

  it.each([
    ['Deployment', 'UPDATE', ['spec', 'paused'], true],
    ['Deployment', 'CREATE', ['spec', 'paused'], true],
    ['StatefulSet', 'UPDATE', ['spec', 'updateStrategy', 'rollingUpdate', 'partition'], HOLD_PARTITION],
    ['StatefulSet', 'CREATE', ['spec', 'replicas'], 0],
    ['Job', 'CREATE', ['spec', 'suspend'], true],
    ['CronJob', 'UPDATE', ['spec', 'suspend'], true],
  ] as const)('%s %s holds %j and records it; releasePatch restores exactly', (kind, operation, path, held) => {
    const object = chartWorkload({ kind: kind as Kind, component: 'scheduler', version: '3.0.2', replicas: 3 });
    const { patch, record } = holdPatch(kind, object, target, operation);
    const heldObject = apply(object, patch) as any;
    expect(path.reduce((o: any, k) => o[k], heldObject)).toBe(held);
    const annotations = heldObject.metadata.annotations;
    expect(annotations['airflow-downgrade-guard/operation']).toBe(target.operationId);
    expect(annotations['airflow-downgrade-guard/from-version']).toBe('3.1.0');
    expect(annotations['airflow-downgrade-guard/to-version']).toBe('3.0.2');
    expect(annotations['airflow-downgrade-guard/from-revision']).toBe('cc92b33c6709');
    expect(annotations['airflow-downgrade-guard/to-revision']).toBe('29ce7909c52b');
    expect(annotations['meta.helm.sh/release-name']).toBe('airflow');
    expect(readHoldRecord(heldObject)).toEqual(record);
    expect(apply(heldObject, releasePatch(heldObject))).toEqual(object);
  });

  it('adds missing parents whole and removes them again on release', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler' }) as any;
    delete object.metadata.annotations;
    const { patch } = holdPatch('Deployment', object, target, 'UPDATE');
    expect(patch.some((op) => op.path === '/metadata/annotations' && op.op === 'add')).toBe(true);
    const held = apply(object, patch);
    const released = apply(held, releasePatch(held)) as any;
    expect(released.spec.paused).toBeUndefined();
    expect(released.metadata.annotations).toEqual({});
  });

  it('setOps builds the first missing parent as one add', () => {
    expect(setOps({ spec: {} }, ['spec', 'updateStrategy', 'rollingUpdate', 'partition'], 5)).toEqual([
      { op: 'add', path: '/spec/updateStrategy', value: { rollingUpdate: { partition: 5 } } },
    ]);
  });

  it('switches a StatefulSet with OnDelete to a partitioned RollingUpdate and says so; release restores OnDelete', () => {
    const object = chartWorkload({
      kind: 'StatefulSet',
      component: 'worker',
      updateStrategy: { type: 'OnDelete' },
      replicas: 2,
    });
    const { patch, record } = holdPatch('StatefulSet', object, target, 'UPDATE');
    const held = apply(object, patch) as any;
    expect(held.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: HOLD_PARTITION } });
    expect(record.notes?.join(' ')).toMatch(/OnDelete/);
    expect(apply(held, releasePatch(held))).toEqual(object);
  });

  it('holding an object that is already held keeps the first previous values', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler' });
    const once = apply(object, holdPatch('Deployment', object, target, 'UPDATE').patch);
    const twice = apply(once, holdPatch('Deployment', once, target, 'UPDATE').patch);
    expect(readHoldRecord(twice)?.changes).toEqual([{ path: '/spec/paused', existed: false, held: true }]);
    expect(apply(twice, releasePatch(twice))).toEqual(object);
  });

  it('releasePatch without a record only removes the guard annotations that exist', () => {
    const object = chartWorkload({
      kind: 'Job',
      component: 'run-airflow-migrations',
      annotations: { 'airflow-downgrade-guard/operation': 'dg-1' },
    });
    expect(releasePatch(object)).toEqual([
      { op: 'remove', path: '/metadata/annotations/airflow-downgrade-guard~1operation' },
    ]);
  });

  it('an unreadable hold record is ignored', () => {
    const object = chartWorkload({
      kind: 'Job',
      component: 'x',
      annotations: { 'airflow-downgrade-guard/hold': '{not json' },
    });
    expect(readHoldRecord(object)).toBeUndefined();
  });
});

describe('readHoldRecord', () => {
  it('ignores recorded paths a hold never changes (the annotation is user-editable)', () => {
    const record = {
      kind: 'Deployment',
      changes: [
        { path: '/spec/paused', existed: false, held: true },
        { path: '/spec/template/spec/containers/0/image', existed: true, previous: 'evil:1', held: 'x' },
      ],
    };
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      annotations: { 'airflow-downgrade-guard/hold': JSON.stringify(record) },
    });
    expect(readHoldRecord(object)?.changes.map((c) => c.path)).toEqual(['/spec/paused']);
    expect(releasePatch(object).some((op) => op.path.includes('containers'))).toBe(false);
  });
});

describe('hold target codec', () => {
  it.each(['Deployment', 'StatefulSet', 'Job', 'CronJob'] as const)(
    'readHoldTarget is the inverse of holdPatch (%s)',
    (kind) => {
      const object = chartWorkload({ kind, component: 'scheduler', version: '3.0.2', replicas: 2 });
      expect(readHoldTarget(object)).toBeUndefined();
      const held = apply(object, holdPatch(kind, object, target, 'UPDATE').patch);
      expect(readHoldTarget(held)).toEqual(target);
      const { fromRevision: _omitted, ...withoutFrom } = target;
      expect(readHoldTarget(apply(object, holdPatch(kind, object, withoutFrom, 'UPDATE').patch))).toEqual(withoutFrom);
      expect(readHoldTarget(apply(held, releasePatch(held)))).toBeUndefined();
    },
  );

  it('holdOperationPatch moves a hold to another operation and changes nothing else', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler', version: '3.0.2' });
    const held = apply(object, holdPatch('Deployment', object, target, 'UPDATE').patch);
    const moved = apply(held, holdOperationPatch(held, 'dg-fedcba9876543210'));
    expect(readHoldTarget(moved)).toEqual({ ...target, operationId: 'dg-fedcba9876543210' });
    expect(readHoldRecord(moved)).toEqual(readHoldRecord(held));
    expect(holdOperationPatch(object, 'dg-fedcba9876543210')).toEqual([]);
  });

  it('returnPatch undoes the hold and marks the object returned; a new hold or clearReturnedPatch removes the mark', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler', version: '3.0.2', replicas: 2 });
    const held = apply(object, holdPatch('Deployment', object, target, 'UPDATE').patch) as any;
    const returned = apply(held, returnPatch(held, readHoldRecord(held), target.operationId)) as any;
    expect(returned.spec.paused).toBeUndefined();
    expect(readHoldTarget(returned)).toBeUndefined();
    expect(readReturnedFrom(returned)).toBe(target.operationId);
    expect(readReturnedFrom(apply(returned, clearReturnedPatch(returned)))).toBeUndefined();
    expect(clearReturnedPatch(object)).toEqual([]);
    expect(
      readReturnedFrom(apply(returned, holdPatch('Deployment', returned, target, 'UPDATE').patch)),
    ).toBeUndefined();
  });
});
