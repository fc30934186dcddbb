// `wait`: is this release done? A pure answer over one snapshot of the release — its operation
// record and its workloads as the cluster stores them. Done means: no operation open, no workload
// carrying a hold, none drained waiting for its update, and every workload rolled out its current
// spec. Held, aborted and failed end the wait with their reason; everything else is "not yet".
import { currentStep } from '../coordinator/operator-actions.js';
import { isTerminal, type OperationState } from '../coordinator/operation.js';
import { readDrainedRecord } from '../core/decide.js';
import { ANNOTATIONS } from '../core/config.js';
import { readHoldRecord } from '../core/hold.js';
import { annotationAt, type JsonObject, type WorkloadKind } from '../core/objects.js';
import { rolloutOf } from './rollout.js';

export interface WorkloadSnapshot {
  kind: WorkloadKind;
  name: string;
  object: JsonObject;
}

export interface ReleaseSnapshot {
  namespace: string;
  release: string;
  /** The release's operation record (ConfigMap airflow-downgrade-guard-op-<release>), when there is one. */
  operation?: OperationState;
  /** Why the operation record exists but cannot be read. */
  operationProblem?: string;
  /** The release's workloads (Deployments, StatefulSets, Jobs, CronJobs). */
  workloads: WorkloadSnapshot[];
}

export type Verdict =
  | { state: 'done'; summary: string }
  | { state: 'waiting'; reasons: string[] }
  /** Ends the wait unsuccessfully: the release will not get done without someone acting. */
  | { state: 'held' | 'aborted' | 'failed'; reason: string };

function ref(w: WorkloadSnapshot): string {
  return `${w.kind.toLowerCase()}/${w.name}`;
}

function transition(op: OperationState): string {
  return `${op.fromVersion} -> ${op.toVersion}`;
}

/** The operation a workload's hold belongs to ('' for a hold that names none). */
function holdOperation(w: WorkloadSnapshot): string | undefined {
  if (!readHoldRecord(w.object)) return undefined;
  return annotationAt(w.object, ANNOTATIONS.operation) ?? '';
}

export function releaseVerdict(snapshot: ReleaseSnapshot): Verdict {
  const name = `${snapshot.namespace}/${snapshot.release}`;
  if (snapshot.operationProblem)
    return { state: 'failed', reason: `the operation record of ${name} cannot be read: ${snapshot.operationProblem}` };
  const op = snapshot.operation;
  if (op?.phase === 'held') {
    return {
      state: 'held',
      reason: `operation ${op.id} (${transition(op)}) is held at ${op.heldFrom ?? 'confirm'}: ${op.heldReason ?? 'no reason recorded'}`,
    };
  }
  if (op && !isTerminal(op.phase))
    return {
      state: 'waiting',
      reasons: [`operation ${op.id} (${transition(op)}) is at ${op.phase}: ${currentStep(op)}`],
    };

  const held = snapshot.workloads.filter((w) => holdOperation(w) !== undefined);
  if (op?.phase === 'aborted') {
    const stillHeld = held.filter((w) => holdOperation(w) === op.id).map(ref);
    if (stillHeld.length > 0) {
      return {
        state: 'aborted',
        reason: `operation ${op.id} (${transition(op)}) was aborted; held until changed back to ${op.fromVersion}: ${stillHeld.join(', ')}`,
      };
    }
  }
  const unnamed = held.filter((w) => holdOperation(w) === '');
  if (unnamed.length > 0) {
    return {
      state: 'held',
      reason: `held by the guard with no operation: ${unnamed.map(ref).join(', ')} (kubectl describe shows why)`,
    };
  }

  const reasons: string[] = [];
  // Holds whose operation is not open: admitted just now (the record follows), or naming one that ended.
  for (const w of held) {
    const id = holdOperation(w) as string;
    reasons.push(
      id === op?.id
        ? `${ref(w)} is held for operation ${id}, which ended (${op.phase}); waiting for the guard to take it up`
        : `${ref(w)} is held for operation ${id}, which has not opened yet`,
    );
  }
  let failure: string | undefined;
  for (const w of snapshot.workloads) {
    if (holdOperation(w) !== undefined) continue;
    if (readDrainedRecord(w.object)) {
      reasons.push(`${ref(w)} is drained, kept at 0 until its own update arrives`);
      continue;
    }
    const rollout = rolloutOf(w.kind, w.object);
    if (rollout.state === 'failed') failure ??= `${ref(w)} ${rollout.detail}`;
    if (rollout.state === 'progressing') reasons.push(`${ref(w)}: ${rollout.detail}`);
  }
  if (failure) return { state: 'failed', reason: failure };
  if (snapshot.workloads.length === 0) reasons.push(`no workload of release ${name} found yet`);
  if (reasons.length > 0) return { state: 'waiting', reasons };
  const last = op ? `; last operation ${op.id} (${transition(op)}) ${op.phase}` : '';
  return {
    state: 'done',
    summary: `release ${name}: ${snapshot.workloads.length} workloads rolled out, none held${last}`,
  };
}

/** The exit codes of `wait` (issue 17): 0 done, 3 held/aborted/failed, 124 timeout, 1 cluster unreadable, 2 usage. */
export const WAIT_EXIT = { done: 0, unreadable: 1, usage: 2, notDone: 3, timeout: 124 } as const;
