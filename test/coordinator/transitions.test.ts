import { describe, expect, it } from 'vitest';
import { PHASES, TERMINAL_PHASES, type Phase } from '../../src/coordinator/operation.js';
import {
  OPERATION_EVENTS,
  RESUMABLE,
  TRANSITIONS,
  TransitionError,
  canHappen,
  nextPhase,
  type OperationEvent,
} from '../../src/coordinator/transitions.js';

// The whole table, written out once more as (phase, event) -> next: a change to the table must
// change this list too, so every transition is one a reviewer agreed to.
const EXPECTED: Array<[Phase, OperationEvent, Phase]> = [
  ['confirm', 'at-from', 'downgrade'],
  ['confirm', 'drain-first', 'quiesce'],
  ['confirm', 'at-target', 'drain'],
  ['confirm', 'failed', 'held'],
  ['confirm', 'stalled', 'held'],
  ['confirm', 'reverted', 'cancelled'],
  ['confirm', 'returned', 'forward'],
  ['confirm', 'abort', 'aborted'],
  ['quiesce', 'quiesced', 'downgrade'],
  ['quiesce', 'stalled', 'held'],
  ['quiesce', 'returned', 'forward'],
  ['downgrade', 'downgraded', 'verify'],
  ['downgrade', 'failed', 'held'],
  ['downgrade', 'stalled', 'held'],
  ['downgrade', 'returned', 'forward'],
  ['downgrade', 'abort', 'aborted'],
  ['verify', 'verified', 'drain'],
  ['verify', 'failed', 'held'],
  ['verify', 'returned', 'forward'],
  ['drain', 'drained', 'release'],
  ['drain', 'stalled', 'held'],
  ['drain', 'returned', 'forward'],
  ['release', 'released', 'done'],
  ['release', 'stalled', 'held'],
  ['release', 'returned', 'forward'],
  ['forward', 'migrated', 'restore'],
  ['forward', 'untouched', 'cancelled'],
  ['forward', 'failed', 'held'],
  ['forward', 'stalled', 'held'],
  ['restore', 'restored', 'returned'],
  ['restore', 'stalled', 'held'],
  ['held', 'retry', 'confirm'],
  ['held', 'abort', 'aborted'],
  ['held', 'reverted', 'cancelled'],
  ['held', 'returned', 'forward'],
];

describe('operation transition table', () => {
  it('every (phase, event) pair: the listed ones lead where listed, every other one is refused', () => {
    let pairs = 0;
    for (const phase of PHASES) {
      for (const event of OPERATION_EVENTS) {
        pairs++;
        const expected = EXPECTED.find(([p, e]) => p === phase && e === event);
        if (expected) {
          expect(canHappen(phase, event), `${phase} + ${event}`).toBe(true);
          expect(nextPhase(phase, event), `${phase} + ${event}`).toBe(expected[2]);
        } else {
          expect(canHappen(phase, event), `${phase} + ${event}`).toBe(false);
          expect(() => nextPhase(phase, event), `${phase} + ${event}`).toThrow(TransitionError);
        }
      }
    }
    expect(pairs).toBe(PHASES.length * OPERATION_EVENTS.length);
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...PHASES].sort());
  });

  it('terminal phases have no way out; every other phase has one', () => {
    for (const phase of PHASES)
      expect(Object.keys(TRANSITIONS[phase]).length === 0, phase).toBe(TERMINAL_PHASES.includes(phase));
  });

  it('retry resumes where a held operation stopped when that is safe to repeat, else confirm', () => {
    for (const from of PHASES) {
      expect(nextPhase('held', 'retry', from), from).toBe(RESUMABLE.includes(from) ? from : 'confirm');
    }
    expect(nextPhase('held', 'retry')).toBe('confirm');
    expect(RESUMABLE).toEqual(['drain', 'release', 'forward', 'restore']);
  });

  it('a return after the schema may have changed always goes forward, never to a cancel', () => {
    for (const phase of ['quiesce', 'downgrade', 'verify', 'drain', 'release', 'held'] as const)
      expect(nextPhase(phase, 'returned')).toBe('forward');
    for (const phase of PHASES) if (canHappen(phase, 'reverted')) expect(['confirm', 'held']).toContain(phase);
  });

  it('every phase is reachable from confirm', () => {
    const seen = new Set<Phase>(['confirm']);
    for (let changed = true; changed;) {
      changed = false;
      for (const [from, , to] of EXPECTED) {
        if (seen.has(from) && !seen.has(to)) {
          seen.add(to);
          changed = true;
        }
      }
    }
    expect([...seen].sort()).toEqual([...PHASES].sort());
  });
});
