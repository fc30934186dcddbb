// Pure questions the coordinator asks about an operation and the release's workloads: which held
// workloads are its members, whether the release was changed back, what a stall amounts to, and the
// id of a downgrade that follows an earlier one.
import { createHash } from 'node:crypto';
import { RETURN_NEEDS_FORWARD, type OperationState } from './operation.js';
import type { WorkloadRecord } from './release-view.js';
import type { OperationEvent } from './transitions.js';

/** Whether a held workload is part of the operation: its id, or the id the webhook derived for it. */
export function belongsTo(op: OperationState, w: Pick<WorkloadRecord, 'holdOperation'>): boolean {
  return w.holdOperation !== undefined && (w.holdOperation === op.id || w.holdOperation === op.admittedAs);
}

/**
 * Whether a held workload is a return after the downgrade `op` finished: held under it with its spec
 * back on the from-version (the webhook holds such a change; see decide's returnAfterDone).
 */
export function returnsAfterDone(op: OperationState, w: Pick<WorkloadRecord, 'holdOperation' | 'head'>): boolean {
  return op.phase === 'done' && belongsTo(op, w) && w.head === op.fromRevision;
}

/** Whether the webhook marked the workload as changed back to the from-version of the operation. */
export function returnedFrom(op: OperationState, w: Pick<WorkloadRecord, 'returnedFrom'>): boolean {
  return w.returnedFrom !== undefined && (w.returnedFrom === op.id || w.returnedFrom === op.admittedAs);
}

/**
 * A Job held for the operation on a version other than its from-version: its pod template cannot be
 * changed, so no change back reaches it (`helm rollback` leaves the upgrade's hook Job as it was).
 * A return leaves it behind, never having run (held since it was created); the coordinator deletes
 * it as it records the return: released it would run the version the release left on a schema that
 * is not its own, and kept it would be a hold naming a finished operation, which opens a new one.
 */
export function leftBehind(op: OperationState, w: Pick<WorkloadRecord, 'kind' | 'holdOperation' | 'head'>): boolean {
  return w.kind === 'Job' && belongsTo(op, w) && w.head !== op.fromRevision;
}

/**
 * `reverted` when every held workload was changed back before the schema could have moved;
 * `returned` when the webhook marked them returned after it may have (the schema goes forward
 * again); undefined while any member is still held, while the caches are cold, or mid-return.
 * Jobs left behind count as changed back once the webhook marked a workload returned.
 */
export function returnEvent(
  op: OperationState,
  workloads: ReadonlyArray<Pick<WorkloadRecord, 'kind' | 'holdOperation' | 'head' | 'returnedFrom'>>,
  cachesReady: boolean,
): OperationEvent | undefined {
  if (op.phase === 'forward' || op.phase === 'restore' || !cachesReady) return undefined;
  const members = workloads.filter((w) => belongsTo(op, w));
  if (members.some((w) => !leftBehind(op, w))) return undefined;
  // Positive evidence only: a release that lost its holds to its own release step is not a return,
  // and a held Job alone is no return (the rest of its rollout may still come).
  const marked = workloads.some((w) => returnedFrom(op, w));
  if (members.length > 0 && !marked) return undefined;
  const where = op.phase === 'held' ? (op.heldFrom ?? 'confirm') : op.phase;
  if (!RETURN_NEEDS_FORWARD.includes(where)) return 'reverted';
  return marked ? 'returned' : undefined;
}

export type StallOutcome =
  { kind: 'held'; op: OperationState } | { kind: 'new'; op: OperationState } | { kind: 'unchanged' };

/**
 * A wait on something that may never come, `reason` now: the first time (or with a new reason) it is
 * `new` (shown at once); past `boundMs` since the stall began, `held` with the reason.
 */
export function stallOutcome(op: OperationState, reason: string, nowMs: number, boundMs: number): StallOutcome {
  const since = op.stalled?.since ?? new Date(nowMs).toISOString();
  const waited = nowMs - Date.parse(since);
  if (waited >= boundMs) {
    return {
      kind: 'held',
      op: {
        ...op,
        stalled: { reason, since },
        heldFrom: op.phase,
        heldReason: `stalled for ${Math.round(waited / 1000)} s: ${reason}`,
      },
    };
  }
  if (op.stalled?.reason === reason) return { kind: 'unchanged' };
  return { kind: 'new', op: { ...op, stalled: { reason, since } } };
}

/** A new id for a downgrade that follows an earlier operation of the release. */
export function freshOperationId(
  namespace: string,
  release: string,
  admittedAs: string,
  previous: string,
  now: Date,
): string {
  const digest = createHash('sha256')
    .update(`${namespace}/${release}/${admittedAs}/${previous}/${now.toISOString()}`)
    .digest('hex');
  return `dg-${digest.slice(0, 16)}`;
}
