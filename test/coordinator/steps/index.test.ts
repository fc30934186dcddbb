import { describe, expect, it } from 'vitest';
import { PHASES, TERMINAL_PHASES } from '../../../src/coordinator/operation.js';
import { STEPS } from '../../../src/coordinator/steps/index.js';
import { TRANSITIONS } from '../../../src/coordinator/transitions.js';

describe('the step of each phase', () => {
  it('every phase but held and the ends runs a step; those wait for an event from outside', () => {
    const waiting = PHASES.filter((p) => STEPS[p] === undefined);
    expect(waiting.sort()).toEqual(['held', ...TERMINAL_PHASES].sort());
    for (const phase of PHASES.filter((p) => STEPS[p] !== undefined))
      expect(Object.keys(TRANSITIONS[phase]).length, phase).toBeGreaterThan(0);
  });

  it('quiesce is the drain step run before the downgrade', () => {
    expect(STEPS.quiesce).toBe(STEPS.drain);
  });
});
