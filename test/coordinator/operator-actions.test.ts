import { describe, expect, it } from 'vitest';
import { newOperation, PHASES, type OperationState, type Phase } from '../../src/coordinator/operation.js';
import { OperatorActionError, checkAbortable, retryPhase } from '../../src/coordinator/operator-actions.js';
import { canHappen, nextPhase } from '../../src/coordinator/transitions.js';

const base = newOperation({
  id: 'dg-bbbbbbbbbbbbbbbb',
  namespace: 'airflow',
  release: 'airflow',
  fromVersion: '3.1.0',
  toVersion: '3.0.2',
  fromRevision: 'cc92b33c6709',
  toRevision: '29ce7909c52b',
  openedBy: 'Deployment/airflow-api-server',
  now: new Date('2026-12-01T10:00:00Z'),
});
const op = (phase: Phase, extra: Partial<OperationState> = {}): OperationState => ({ ...base, phase, ...extra });

describe('operator actions follow the transition table', () => {
  it('retry only from held, to where the table resumes it', () => {
    for (const phase of PHASES) {
      if (phase === 'held') continue;
      expect(() => retryPhase(op(phase)), phase).toThrow(OperatorActionError);
    }
    for (const from of PHASES)
      expect(retryPhase(op('held', { heldFrom: from }))).toBe(nextPhase('held', 'retry', from));
  });

  it('abort only where the table allows it and the schema cannot have moved', () => {
    const abortable = PHASES.filter((phase) => {
      try {
        checkAbortable(op(phase));
        return true;
      } catch (error) {
        expect(error).toBeInstanceOf(OperatorActionError);
        return false;
      }
    });
    expect(abortable).toEqual(['confirm', 'downgrade', 'held']);
    for (const phase of abortable) expect(canHappen(phase, 'abort')).toBe(true);
    expect(() => checkAbortable(op('held', { heldFrom: 'drain' }))).toThrow(/schema may already be at 3\.0\.2/);
  });

  it('drain-first: no abort once the release was drained before its downgrade (it would stay at 0)', () => {
    expect(() => checkAbortable(op('confirm', { order: 'drain-first' }))).not.toThrow();
    for (const where of ['quiesce', 'downgrade'] as const) {
      expect(() => checkAbortable(op(where, { order: 'drain-first' })), where).toThrow(/leave it at 0 replicas/);
      expect(() => checkAbortable(op('held', { order: 'drain-first', heldFrom: where })), `held from ${where}`).toThrow(
        /leave it at 0 replicas/,
      );
    }
    expect(() => checkAbortable(op('downgrade', { order: 'downgrade-first' }))).not.toThrow();
  });
});
