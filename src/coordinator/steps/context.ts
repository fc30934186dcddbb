// What a step module may use: the narrow context the coordinator gives it (database, workloads,
// pods, reports, Events, waits, clock), so each step is unit-tested in-process against an
// in-memory context.
import { headIndex } from '../../core/heads.js';
import type { ExecOutcome } from '../../k8s/exec.js';
import type { OperationState, StepName, StepRecord } from '../operation.js';
import type { PodRecord, WorkloadRecord } from '../release-view.js';
import type { OperationEvent } from '../transitions.js';

export interface StepReport {
  operation: OperationState;
  step: StepName;
  event: 'start' | 'end';
  outcome?: StepRecord['outcome'];
  durationMs?: number;
  execPod?: string;
  command?: string[];
  exitCode?: number;
  output?: string;
  error?: string;
  detail?: string;
}

/**
 * A step's outcome: the event it ends with (the table in transitions.ts gives the next phase), with
 * records of sub-steps that ran before it (e.g. a roll-forward) and the name the step is recorded
 * under when that is not the phase's; or wait and try again.
 */
// A wait `on: 'watch'` is ended by a watch event (pods gone, a pod Ready); the resync is its fallback.
export type StepResult =
  | { event: OperationEvent; op: OperationState; before?: StepRecord[]; as?: StepName }
  | { wait: true; op: OperationState; on?: 'watch' };

/** The pod a migration command runs in (a pod of the from-version, or a runner started from its template). */
export type ExecPod = NonNullable<OperationState['execPod']>;
/** The commands the coordinator execs: the downgrade, a roll-forward after it, the forward move of a return. */
export type ExecStep = 'downgrade' | 'roll-forward' | 'forward';

export interface StepContext {
  /** alembic_version of the release's metadata database (null: no table); throws when unreadable. */
  readRevision(op: OperationState): Promise<string | null>;
  /** Logs the step's progress and passes it to the hooks (audit, metrics). */
  report(report: StepReport): void;
  /** An Event on the operation's workloads. */
  emitEvent(op: OperationState, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  /** A wait on something that may never come: shown at once, held past the stall bound. */
  stall(op: OperationState, reason: string, on?: 'watch'): Promise<StepResult>;
  /** Whether a step failing on something outside us may not be tried again yet. */
  backingOff(op: OperationState): boolean;
  /** No new attempt of the step before an exponential backoff after `attempts`. */
  backOff(op: OperationState, attempts: number): void;
  /** A downgrade that stopped halfway, migrated forward again (ends held, recorded as `hold`). */
  rollForward(op: OperationState, at: string | null, why: string, failed: StepRecord): Promise<StepResult>;
  /** The release's workloads as the watch caches last saw them. */
  releaseWorkloads(op: OperationState): WorkloadRecord[];
  /**
   * Gives one workload whose spec is on `head` back: hold undone, drained replicas or suspend
   * restored, returned marker removed. False when it is not on `head` and must keep waiting.
   */
  restoreWorkload(op: OperationState, w: WorkloadRecord, head: string): Promise<boolean>;
  /** Whether a migration holds the metadata database's lock; throws when unreadable. */
  migrationRunning(op: OperationState): Promise<boolean>;
  /**
   * A Running, Ready pod of the from-version to exec in; else undefined, after starting a runner pod
   * from that version's template (its pod watch event brings the step back).
   */
  execPod(op: OperationState): Promise<ExecPod | undefined>;
  /** Runs `argv` in `op.execPod`, reported and with Events before and after. */
  exec(op: OperationState, step: ExecStep, argv: string[]): Promise<ExecOutcome>;
  /** Deletes the operation's runner pod when there is one. */
  deleteRunner(op: OperationState): Promise<void>;
  /** The release's pods that must be gone before its workloads run `head` (see podsBlockingRelease). */
  podsBlocking(op: OperationState, head: string): PodRecord[];
  /** Every pod of the release the pod cache holds. */
  releasePods(op: OperationState): PodRecord[];
  /** Deletes a pod, `force`: without a grace period. */
  deletePod(pod: PodRecord, force: boolean): Promise<void>;
  /** A Deployment or StatefulSet at 0 replicas, the replicas to restore recorded on it. */
  scaleToZero(op: OperationState, w: WorkloadRecord): Promise<void>;
  /** A CronJob suspended, its own suspend recorded on it. */
  suspendCronJob(op: OperationState, w: WorkloadRecord): Promise<void>;
  /** The returned marker removed from every workload of the release changed back from the operation. */
  clearReturnedMarkers(op: OperationState): Promise<void>;
  /** Milliseconds since the epoch. */
  now(): number;
  /** Attempts of a step failing on something outside us (an unreadable database, a refused exec) before the operation is held. */
  readonly confirmAttempts: number;
  /** After this long waiting for old pods to go, they are deleted; after twice it, force-deleted. */
  readonly drainTimeoutMs: number;
  /** How long after the operation opened a workload its rollout has not applied may be scaled by the guard. */
  readonly rolloutSettleMs: number;
}

/** The step found a state it must not act on: held with the reason, remembering where it stopped. */
export function failed(op: OperationState, reason: string): StepResult {
  return { event: 'failed', op: { ...op, heldReason: reason, heldFrom: op.phase } };
}

/** Whether `revision` lies strictly between two heads of the chain (a downgrade that stopped halfway). */
export function isBetween(revision: string | null, lower: string, upper: string): boolean {
  if (!revision) return false;
  const i = headIndex(revision);
  return i !== -1 && i > headIndex(lower) && i < headIndex(upper);
}
