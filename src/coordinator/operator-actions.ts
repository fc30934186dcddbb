// What an operator can do to an operation from the CLI (`status`, `retry`, `abort`): read and
// change its state in the cluster. The driving replica notices through its watch; nothing here
// runs a step itself.
import { isConflict, type Cluster } from '../k8s/cluster.js';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  SCHEMA_MAY_HAVE_CHANGED,
  isTerminal,
  operationConfigMap,
  operationConfigMapName,
  readOperationConfigMap,
  withStep,
  type OperationState,
  type Phase,
} from './operation.js';
import { canHappen, nextPhase } from './transitions.js';

export class OperatorActionError extends Error {
  override name = 'OperatorActionError';
}

/** Every operation the cluster (or one namespace) holds, newest first. */
export async function listOperations(cluster: Cluster, namespace?: string): Promise<OperationState[]> {
  const list = await cluster.list('ConfigMap', namespace, `${MANAGED_BY_LABEL}=${MANAGED_BY}`);
  const ops: OperationState[] = [];
  for (const cm of list.items) {
    try {
      const read = readOperationConfigMap(cm);
      if (read) ops.push(read.op);
    } catch {
      // unreadable state is reported by the coordinator; status lists what it can read
    }
  }
  return ops.sort((a, b) => b.openedAt.localeCompare(a.openedAt));
}

/** Finds an operation by id, or by `<namespace>/<release>`. */
export async function findOperation(cluster: Cluster, ref: string, namespace?: string): Promise<OperationState> {
  const ops = await listOperations(cluster, namespace);
  const match = ops.find((op) => op.id === ref || `${op.namespace}/${op.release}` === ref);
  if (!match) throw new OperatorActionError(`no operation ${ref}${namespace ? ` in namespace ${namespace}` : ''}`);
  return match;
}

/** The phase a held operation resumes in: where it stopped when that is safe, else confirm. */
export function retryPhase(op: OperationState): Phase {
  if (!canHappen(op.phase, 'retry'))
    throw new OperatorActionError(`operation ${op.id} is ${op.phase}, not held: nothing to retry`);
  return nextPhase(op.phase, 'retry', op.heldFrom);
}

/** Abort is refused once the schema may have changed: only finishing matches the code again. */
export function checkAbortable(op: OperationState): void {
  if (isTerminal(op.phase)) throw new OperatorActionError(`operation ${op.id} already ended (${op.phase})`);
  const phase = op.phase === 'held' ? (op.heldFrom ?? 'confirm') : op.phase;
  if (op.order === 'drain-first' && (phase === 'quiesce' || phase === 'downgrade')) {
    // An abort would leave the drained release at 0 replicas with no operation to give them back.
    throw new OperatorActionError(
      `operation ${op.id} drained the release before its downgrade: aborting would leave it at 0 replicas — change the release back to ${op.fromVersion} (e.g. helm rollback) to cancel and restore it, or fix the cause and retry`,
    );
  }
  if (SCHEMA_MAY_HAVE_CHANGED.includes(phase) || !canHappen(op.phase, 'abort')) {
    throw new OperatorActionError(
      `operation ${op.id} reached ${phase}: the schema may already be at ${op.toVersion}; aborting would leave no running code matching it — fix the cause and retry instead`,
    );
  }
}

async function change(
  cluster: Cluster,
  op: OperationState,
  step: 'retry' | 'abort',
  user: string,
  next: (op: OperationState) => OperationState,
): Promise<OperationState> {
  const name = operationConfigMapName(op.release);
  const cm = await cluster.get('ConfigMap', op.namespace, name);
  const read = readOperationConfigMap(cm);
  if (!read) throw new OperatorActionError(`operation ${op.id} has no state any more; look again`);
  const current = read.op;
  if (current.id !== op.id)
    throw new OperatorActionError(`operation ${op.id} was replaced by ${current.id}; look again`);
  const now = new Date().toISOString();
  const updated = withStep(
    { ...next(current), updatedAt: now },
    { step, outcome: 'ok', at: now, durationMs: 0, detail: `by ${user}` },
  );
  try {
    await cluster.replace('ConfigMap', op.namespace, name, operationConfigMap(updated, read.resourceVersion));
  } catch (error) {
    if (isConflict(error)) throw new OperatorActionError('the operation changed meanwhile; look again and retry');
    throw error;
  }
  return updated;
}

export async function retryOperation(cluster: Cluster, op: OperationState, user: string): Promise<OperationState> {
  const phase = retryPhase(op);
  return change(cluster, op, 'retry', user, (current) => {
    const { heldReason: _r, heldFrom: _f, stalled: _s, ...rest } = current;
    return { ...rest, phase: retryPhase(current) === phase ? phase : retryPhase(current), attempts: 0 };
  });
}

export async function abortOperation(cluster: Cluster, op: OperationState, user: string): Promise<OperationState> {
  checkAbortable(op);
  return change(cluster, op, 'abort', user, (current) => {
    checkAbortable(current);
    return { ...current, phase: nextPhase(current.phase, 'abort') };
  });
}

// ---- what `status` shows ----------------------------------------------------------------------

/** In progress (open or held) first, then ended ones; newest first within each. */
export function sortForStatus(ops: readonly OperationState[]): OperationState[] {
  const rank = (op: OperationState): number => (isTerminal(op.phase) ? 1 : 0);
  return [...ops].sort((a, b) => rank(a) - rank(b) || b.openedAt.localeCompare(a.openedAt));
}

/** The step the operation is at: its last recorded step and outcome (a held one: where it stopped). */
export function currentStep(op: OperationState): string {
  const last = op.steps.at(-1);
  if (op.phase === 'held')
    return `held at ${op.heldFrom ?? 'confirm'}${last ? ` (last: ${last.step} ${last.outcome})` : ''}`;
  if (!last) return op.phase;
  return `${last.step} ${last.outcome}${last.detail ? `: ${last.detail}` : ''}`;
}

/** kubectl-style age: 42s, 7m, 3h, 12d. */
export function formatAge(fromIso: string, now: Date): string {
  const ms = now.getTime() - Date.parse(fromIso);
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export interface OperationStatus {
  namespace: string;
  release: string;
  id: string;
  phase: Phase;
  inProgress: boolean;
  fromVersion: string;
  toVersion: string;
  fromRevision: string;
  toRevision: string;
  step: string;
  heldReason?: string;
  /** What the operation waits on that may never come, and since when. */
  stalled?: { reason: string; since: string };
  execPod?: string;
  /** Opened by a hold whose version was resolved first: what was found and how (detail), how long. */
  resolved?: { detail: string; durationMs: number };
  openedAt: string;
  updatedAt: string;
  openedBy: string;
  age: string;
}

function resolvedOf(op: OperationState): Pick<OperationStatus, 'resolved'> {
  const step = op.steps.find((s) => s.step === 'resolve');
  return step?.detail ? { resolved: { detail: step.detail, durationMs: step.durationMs } } : {};
}

export function operationStatus(op: OperationState, now: Date = new Date()): OperationStatus {
  return {
    namespace: op.namespace,
    release: op.release,
    id: op.id,
    phase: op.phase,
    inProgress: !isTerminal(op.phase),
    fromVersion: op.fromVersion,
    toVersion: op.toVersion,
    fromRevision: op.fromRevision,
    toRevision: op.toRevision,
    step: currentStep(op),
    ...(op.heldReason ? { heldReason: op.heldReason } : {}),
    ...(op.stalled ? { stalled: op.stalled } : {}),
    ...(op.execPod ? { execPod: op.execPod.name } : {}),
    ...resolvedOf(op),
    openedAt: op.openedAt,
    updatedAt: op.updatedAt,
    openedBy: op.openedBy,
    age: formatAge(op.openedAt, now),
  };
}
