// Operation records written by release 0.1.0 (captured from its code, before the transition table
// and the new record fields) are still read: a guard upgraded mid-operation carries on.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OperationStateError, operationConfigMap, readOperationConfigMap } from '../../src/coordinator/operation.js';
import { nextPhase } from '../../src/coordinator/transitions.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(path.join(import.meta.dirname, '../fixtures/operation', name), 'utf8'));

describe('operation record codec', () => {
  it('reads a 0.1.0 record in its drain phase, and the table carries it on', () => {
    const read = readOperationConfigMap(fixture('v0.1.0-drain.configmap.json'));
    expect(read?.resourceVersion).toBe('4711');
    expect(read?.op).toMatchObject({
      id: 'dg-59c3baed2dde9e23',
      phase: 'drain',
      execPod: { name: 'airflow-api-server-54556f6c95-sxxwg', runner: false },
    });
    expect(read?.op.drainStartedAt).toBeUndefined(); // the drain clock starts again on the first wait
    expect(nextPhase(read!.op.phase, 'drained')).toBe('release');
  });

  it('reads a 0.1.0 held record; retry resumes it at confirm', () => {
    const read = readOperationConfigMap(fixture('v0.1.0-held.configmap.json'));
    expect(read?.op).toMatchObject({ phase: 'held', heldFrom: 'downgrade', attempts: 2 });
    expect(nextPhase(read!.op.phase, 'retry', read!.op.heldFrom)).toBe('confirm');
  });

  it('round-trips the new fields through the ConfigMap', () => {
    const { op } = readOperationConfigMap(fixture('v0.1.0-drain.configmap.json'))!;
    const extended = {
      ...op,
      drainStartedAt: '2026-11-25T14:00:45.000Z',
      stalled: { reason: 'drain: 1 pod', since: '2026-11-25T14:00:46.000Z' },
      admittedAs: 'dg-0011223344556677',
    };
    expect(readOperationConfigMap(operationConfigMap(extended, '9'))).toEqual({ op: extended, resourceVersion: '9' });
  });

  it('a ConfigMap without a record is none; an unreadable one is an error naming the field', () => {
    expect(readOperationConfigMap({ data: {} })).toBeUndefined();
    expect(readOperationConfigMap(undefined)).toBeUndefined();
    const cm = fixture('v0.1.0-drain.configmap.json') as { data: Record<string, string> };
    cm.data['operation.json'] = cm.data['operation.json']!.replace('"phase":"drain"', '"phase":"draining"');
    expect(() => readOperationConfigMap(cm)).toThrow(OperationStateError);
    expect(() => readOperationConfigMap(cm)).toThrow(/phase/);
  });
});
