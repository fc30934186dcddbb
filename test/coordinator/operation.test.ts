import { describe, expect, it } from 'vitest';
import {
  OperationStateError,
  isTerminal,
  leaseName,
  newOperation,
  operationConfigMap,
  operationConfigMapName,
  parseOperation,
  withStep,
} from '../../src/coordinator/operation.js';

const input = {
  id: 'dg-00112233aabbccdd',
  namespace: 'airflow',
  release: 'airflow',
  fromVersion: '3.1.0',
  toVersion: '3.0.2',
  fromRevision: 'cc92b33c6709',
  toRevision: '29ce7909c52b',
  openedBy: 'Deployment/airflow-api-server',
  now: new Date('2025-06-02T10:00:00Z'),
};

describe('operation state', () => {
  it('a new operation starts at confirm with its open step recorded', () => {
    const op = newOperation(input);
    expect(op).toMatchObject({ phase: 'confirm', attempts: 0, openedAt: '2025-06-02T10:00:00.000Z' });
    expect(op.steps).toEqual([
      {
        step: 'open',
        outcome: 'ok',
        at: '2025-06-02T10:00:00.000Z',
        durationMs: 0,
        detail: 'opened by Deployment/airflow-api-server',
      },
    ]);
    expect('now' in op).toBe(false);
  });

  it('round-trips through its ConfigMap', () => {
    const op = newOperation(input);
    const cm = operationConfigMap(op, '42') as {
      metadata: { name: string; resourceVersion: string; labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(cm.metadata).toMatchObject({
      name: 'airflow-downgrade-guard-op-airflow',
      resourceVersion: '42',
      labels: { 'app.kubernetes.io/managed-by': 'airflow-downgrade-guard' },
    });
    expect(parseOperation(cm.data['operation.json']!)).toEqual(op);
  });

  it('refuses state that is not JSON or not valid, naming the field', () => {
    expect(() => parseOperation('{')).toThrow(OperationStateError);
    const bad = { ...newOperation(input), toVersion: '3.0.2; rm -rf /' };
    expect(() => parseOperation(JSON.stringify(bad))).toThrow(/toVersion: not an Airflow version/);
    const badRevision = { ...newOperation(input), toRevision: "x' OR 1=1" };
    expect(() => parseOperation(JSON.stringify(badRevision))).toThrow(/toRevision/);
    expect(() => newOperation({ ...input, id: 'DG_1' })).toThrow();
  });

  it('keeps the newest 200 steps', () => {
    let op = newOperation(input);
    for (let i = 0; i < 250; i++)
      op = withStep(op, { step: 'drain', outcome: 'waiting', at: String(i), durationMs: 1 });
    expect(op.steps).toHaveLength(200);
    expect(op.steps.at(-1)?.at).toBe('249');
    expect(() => parseOperation(JSON.stringify(op))).not.toThrow();
  });

  it('names and terminal phases', () => {
    expect(operationConfigMapName('x'.repeat(300))).toHaveLength(253);
    expect(leaseName('airflow')).toBe('airflow-downgrade-guard-airflow');
    expect(['done', 'aborted', 'cancelled'].every((p) => isTerminal(p as never))).toBe(true);
    expect(['confirm', 'held', 'drain'].some((p) => isTerminal(p as never))).toBe(false);
  });
});
