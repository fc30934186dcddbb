// The operation's state machine: every phase, every event that can happen in it, and where it
// leads. The coordinator, the operator actions (retry/abort) and the return handling change a
// phase only through `nextPhase`, so this table is the whole story of an operation.
import type { Phase } from './operation.js';

export const OPERATION_EVENTS = [
  // outcomes of the steps
  'at-from', // confirm: the schema is at the from-version (or halfway down): run the downgrade
  'drain-first', // confirm, order drain-first: the schema is at the from-version: drain before the downgrade
  'quiesced', // quiesce: no pod of the from-version is left: run the downgrade in a runner pod
  'at-target', // confirm: the schema is already at the target: nothing to run, drain
  'downgraded', // downgrade: the exec finished and the schema moved
  'verified', // verify: alembic_version is the target head
  'drained', // drain: no pod of the from-version is left
  'released', // release: every held workload rolls out the target version
  'migrated', // forward: the schema is back at the from-version head (migrated or never moved)
  'untouched', // forward: the schema never moved and nothing was drained: nothing to undo
  'restored', // restore: every drained workload runs the from-version again
  'failed', // a step found a state it must not act on (exec failed, unexpected revision)
  'stalled', // a wait on something that may never come outlived the stall bound
  // from outside the steps
  'reverted', // every held workload was changed back before the schema could have changed
  'returned', // every held workload was changed back after the schema may have changed; confirm: a return after `done` (returnOf)
  'retry', // operator: `status retry`
  'abort', // operator: `status abort`
] as const;
export type OperationEvent = (typeof OPERATION_EVENTS)[number];

/** `retry` of a held operation: back where it stopped when that is safe to repeat, else confirm. */
export const RESUME = 'resume';
type Target = Phase | typeof RESUME;

/** Held operations resume in these phases; any other held phase starts over at confirm. */
export const RESUMABLE: readonly Phase[] = ['drain', 'release', 'forward', 'restore'];

// prettier-ignore
export const TRANSITIONS: Readonly<Record<Phase, Readonly<Partial<Record<OperationEvent, Target>>>>> = {
  confirm:   { 'at-from': 'downgrade', 'drain-first': 'quiesce', 'at-target': 'drain', failed: 'held', stalled: 'held', reverted: 'cancelled', returned: 'forward', abort: 'aborted' },
  quiesce:   { quiesced: 'downgrade', stalled: 'held', returned: 'forward' },
  downgrade: { downgraded: 'verify', failed: 'held', stalled: 'held', returned: 'forward', abort: 'aborted' },
  verify:    { verified: 'drain', failed: 'held', returned: 'forward' },
  drain:     { drained: 'release', stalled: 'held', returned: 'forward' },
  release:   { released: 'done', stalled: 'held', returned: 'forward' },
  forward:   { migrated: 'restore', untouched: 'cancelled', failed: 'held', stalled: 'held' },
  restore:   { restored: 'returned', stalled: 'held' },
  held:      { retry: RESUME, abort: 'aborted', reverted: 'cancelled', returned: 'forward' },
  done:      {},
  aborted:   {},
  cancelled: {},
  returned:  {},
};

export class TransitionError extends Error {
  override name = 'TransitionError';
}

/** The phase `event` leads to from `phase`; `heldFrom` says where a held operation stopped. */
export function nextPhase(phase: Phase, event: OperationEvent, heldFrom?: Phase): Phase {
  const target = TRANSITIONS[phase][event];
  if (target === undefined) throw new TransitionError(`no transition from ${phase} on ${event}`);
  if (target !== RESUME) return target;
  return heldFrom !== undefined && RESUMABLE.includes(heldFrom) ? heldFrom : 'confirm';
}

export function canHappen(phase: Phase, event: OperationEvent): boolean {
  return TRANSITIONS[phase][event] !== undefined;
}
