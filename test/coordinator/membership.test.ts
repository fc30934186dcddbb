import { describe, expect, it } from 'vitest';
import {
  newOperation,
  PHASES,
  RETURN_NEEDS_FORWARD,
  type OperationState,
  type Phase,
} from '../../src/coordinator/operation.js';
import {
  belongsTo,
  freshOperationId,
  leftBehind,
  returnEvent,
  returnedFrom,
  returnsAfterDone,
  stallOutcome,
} from '../../src/coordinator/membership.js';
import { canHappen } from '../../src/coordinator/transitions.js';

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
const op = (phase: Phase, extra: Partial<OperationState> = {}): OperationState => ({
  ...base,
  phase,
  admittedAs: 'dg-aaaaaaaaaaaaaaaa',
  ...extra,
});

describe('membership of held workloads', () => {
  it('a hold under the operation id or the id the webhook derived belongs to it; others do not', () => {
    expect(belongsTo(op('drain'), { holdOperation: 'dg-bbbbbbbbbbbbbbbb' })).toBe(true);
    expect(belongsTo(op('drain'), { holdOperation: 'dg-aaaaaaaaaaaaaaaa' })).toBe(true);
    expect(belongsTo(op('drain'), { holdOperation: 'dg-cccccccccccccccc' })).toBe(false);
    expect(belongsTo(op('drain'), {})).toBe(false);
    expect(belongsTo({ ...base, phase: 'drain' }, { holdOperation: 'dg-aaaaaaaaaaaaaaaa' })).toBe(false);
    expect(returnedFrom(op('drain'), { returnedFrom: 'dg-aaaaaaaaaaaaaaaa' })).toBe(true);
    expect(returnedFrom(op('drain'), { returnedFrom: 'dg-cccccccccccccccc' })).toBe(false);
  });

  it('a fresh id differs from the derived one and from the previous operation, and is a valid id', () => {
    const id = freshOperationId(
      'airflow',
      'airflow',
      'dg-aaaaaaaaaaaaaaaa',
      'dg-aaaaaaaaaaaaaaaa',
      new Date('2026-12-01T10:00:00Z'),
    );
    expect(id).toMatch(/^dg-[0-9a-f]{16}$/);
    expect(id).not.toBe('dg-aaaaaaaaaaaaaaaa');
    expect(
      freshOperationId('airflow', 'airflow', 'dg-aaaaaaaaaaaaaaaa', id, new Date('2026-12-01T10:05:00Z')),
    ).not.toBe(id);
  });
});

describe('returnsAfterDone: a held workload back on the from-version after the downgrade finished', () => {
  it('only a member of a done operation whose spec is on the from-version head', () => {
    const member = { holdOperation: 'dg-bbbbbbbbbbbbbbbb' };
    expect(returnsAfterDone(op('done'), { ...member, head: 'cc92b33c6709' })).toBe(true);
    expect(returnsAfterDone(op('done'), { holdOperation: 'dg-aaaaaaaaaaaaaaaa', head: 'cc92b33c6709' })).toBe(true);
    // A late member of the downgrade (its spec on the target) is released by the done operation.
    expect(returnsAfterDone(op('done'), { ...member, head: '29ce7909c52b' })).toBe(false);
    expect(returnsAfterDone(op('done'), { holdOperation: 'dg-cccccccccccccccc', head: 'cc92b33c6709' })).toBe(false);
    for (const phase of PHASES.filter((p) => p !== 'done'))
      expect(returnsAfterDone(op(phase), { ...member, head: 'cc92b33c6709' }), phase).toBe(false);
  });
});

describe('returnEvent: the release changed back to the from-version', () => {
  const held = { kind: 'Deployment' as const, holdOperation: 'dg-aaaaaaaaaaaaaaaa' };
  const returned = { kind: 'Deployment' as const, returnedFrom: 'dg-bbbbbbbbbbbbbbbb' };
  const unrelated = { kind: 'Deployment' as const };
  // The upgrade's hook Job on the target version, held: no rollback changes it back.
  const heldJob = { kind: 'Job' as const, holdOperation: 'dg-aaaaaaaaaaaaaaaa', head: '29ce7909c52b' };

  it('nothing while any member is held, while the caches are cold, or while already returning', () => {
    for (const phase of PHASES) {
      expect(returnEvent(op(phase), [held, returned], true), phase).toBeUndefined();
      expect(returnEvent(op(phase), [returned], false), phase).toBeUndefined();
    }
    expect(returnEvent(op('forward'), [returned], true)).toBeUndefined();
    expect(returnEvent(op('restore'), [returned], true)).toBeUndefined();
  });

  it('before the schema can have moved: reverted (a cancel), with or without the marker', () => {
    expect(returnEvent(op('confirm'), [unrelated], true)).toBe('reverted');
    expect(returnEvent(op('confirm'), [returned], true)).toBe('reverted');
    expect(returnEvent(op('held', { heldFrom: 'confirm' }), [returned], true)).toBe('reverted');
    expect(returnEvent(op('held'), [unrelated], true)).toBe('reverted');
  });

  it('after it may have: returned only on the webhook marker, never a cancel', () => {
    for (const phase of RETURN_NEEDS_FORWARD) {
      if (phase === 'forward' || phase === 'restore' || !canHappen(phase, 'returned')) continue;
      expect(returnEvent(op(phase), [unrelated, returned], true), phase).toBe('returned');
      // Holds gone without the marker (the release step's own work): not a return.
      expect(returnEvent(op(phase), [unrelated], true), phase).toBeUndefined();
      expect(returnEvent(op('held', { heldFrom: phase }), [returned], true), `held from ${phase}`).toBe('returned');
    }
  });

  it('a held Job left behind counts as changed back once the webhook marked the rest returned, never alone', () => {
    expect(returnEvent(op('confirm'), [heldJob, returned], true)).toBe('reverted');
    expect(returnEvent(op('downgrade'), [heldJob, returned], true)).toBe('returned');
    expect(returnEvent(op('held', { heldFrom: 'downgrade' }), [heldJob, returned], true)).toBe('returned');
    // The Job alone, or the Job with a workload still held: its rollout may still come.
    for (const phase of ['confirm', 'downgrade', 'drain'] as const) {
      expect(returnEvent(op(phase), [heldJob, unrelated], true), phase).toBeUndefined();
      expect(returnEvent(op(phase), [heldJob, held, returned], true), phase).toBeUndefined();
    }
  });

  it('every event it gives is one the table allows in that phase', () => {
    for (const phase of PHASES) {
      for (const workloads of [[unrelated], [returned], [heldJob, returned]]) {
        const event = returnEvent(op(phase), workloads, true);
        if (event && !['done', 'aborted', 'cancelled', 'returned'].includes(phase))
          expect(canHappen(phase, event), `${phase} ${event}`).toBe(true);
      }
    }
  });
});

describe('leftBehind: a held Job no change back reaches', () => {
  const job = { kind: 'Job' as const, holdOperation: 'dg-bbbbbbbbbbbbbbbb', head: '29ce7909c52b' };

  it('a Job held for the operation on another version than its from-version; no other kind, no Job of another operation', () => {
    expect(leftBehind(op('downgrade'), job)).toBe(true);
    expect(leftBehind(op('downgrade'), { ...job, holdOperation: 'dg-aaaaaaaaaaaaaaaa' })).toBe(true);
    expect(leftBehind(op('downgrade'), { ...job, kind: 'Deployment' })).toBe(false);
    expect(leftBehind(op('downgrade'), { ...job, holdOperation: 'dg-cccccccccccccccc' })).toBe(false);
    // A return after `done` holds the from-version's own hook Job: released with the rest.
    expect(leftBehind(op('restore'), { ...job, head: 'cc92b33c6709' })).toBe(false);
  });
});

describe('stallOutcome', () => {
  const t0 = Date.parse('2026-12-01T10:00:00Z');

  it('a new stall is shown at once with its start; the same reason again changes nothing', () => {
    const first = stallOutcome(op('confirm'), 'metadata Secret not found', t0, 60_000);
    expect(first).toEqual({
      kind: 'new',
      op: { ...op('confirm'), stalled: { reason: 'metadata Secret not found', since: '2026-12-01T10:00:00.000Z' } },
    });
    const stalled = (first as { op: OperationState }).op;
    expect(stallOutcome(stalled, 'metadata Secret not found', t0 + 30_000, 60_000)).toEqual({ kind: 'unchanged' });
  });

  it('a new reason is shown again but keeps the stall start', () => {
    const stalled = op('confirm', { stalled: { reason: 'a', since: '2026-12-01T10:00:00.000Z' } });
    expect(stallOutcome(stalled, 'b', t0 + 10_000, 60_000)).toEqual({
      kind: 'new',
      op: { ...stalled, stalled: { reason: 'b', since: '2026-12-01T10:00:00.000Z' } },
    });
  });

  it('past the bound: held, with where it stopped and why', () => {
    const stalled = op('drain', { stalled: { reason: 'pods left', since: '2026-12-01T10:00:00.000Z' } });
    const outcome = stallOutcome(stalled, 'pods left', t0 + 61_000, 60_000);
    expect(outcome.kind).toBe('held');
    expect((outcome as { op: OperationState }).op).toMatchObject({
      heldFrom: 'drain',
      heldReason: 'stalled for 61 s: pods left',
      stalled: { reason: 'pods left' },
    });
    expect(canHappen('drain', 'stalled')).toBe(true);
  });
});
