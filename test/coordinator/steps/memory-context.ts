// An in-memory StepContext: the database (revision or read error, migration lock), the pod to exec
// in and what an exec does, the pods blocking a rollout and the clock set by the test; every report,
// Event, stall, backoff, roll-forward, exec and cluster change recorded for assertions.
import type { ExecOutcome } from '../../../src/k8s/exec.js';
import { newOperation, type OperationState, type Phase } from '../../../src/coordinator/operation.js';
import type { PodRecord, WorkloadRecord } from '../../../src/coordinator/release-view.js';
import type { ExecPod, ExecStep, StepContext, StepReport, StepResult } from '../../../src/coordinator/steps/context.js';

export const FROM_HEAD = 'cc92b33c6709';
export const TO_HEAD = '29ce7909c52b';
/** The head of 3.0.3, between 3.0.2 and 3.1.0: a downgrade that stopped halfway. */
export const HALFWAY = 'fe199e1abd77';
/** The memory context's clock: the time `operation()` opens its operations. */
export const NOW = Date.parse('2026-12-01T10:00:00Z');
export const DRAIN_TIMEOUT_MS = 60_000;
export const ROLLOUT_SETTLE_MS = 5_000;
export const EXEC_POD: ExecPod = {
  name: 'airflow-api-server-0',
  container: 'api-server',
  component: 'api-server',
  runner: false,
};

export function operation(phase: Phase, extra: Partial<OperationState> = {}): OperationState {
  const op = newOperation({
    id: 'dg-bbbbbbbbbbbbbbbb',
    namespace: 'airflow',
    release: 'airflow',
    fromVersion: '3.1.0',
    toVersion: '3.0.2',
    fromRevision: FROM_HEAD,
    toRevision: TO_HEAD,
    openedBy: 'Deployment/airflow-api-server',
    now: new Date('2026-12-01T10:00:00Z'),
  });
  return { ...op, phase, ...extra };
}

export interface MemoryContext extends StepContext {
  revision: string | null | Error;
  backingOffNow: boolean;
  reports: StepReport[];
  events: Array<{ type: string; reason: string; message: string }>;
  stalls: string[];
  backoffs: number[];
  rolledForward: Array<{ at: string | null; why: string }>;
  /** The release's workloads; a restore succeeds for those on the head asked for and records their names. */
  workloads: WorkloadRecord[];
  restored: string[];
  /** Whether a migration holds the database lock (an Error: the lock cannot be read). */
  locked: boolean | Error;
  /** The pod execPod gives (undefined: none runs, a runner was started). */
  pod: ExecPod | undefined;
  /** What an exec does; by default it succeeds and moves the revision to its --to-revision. */
  onExec: (step: ExecStep, argv: string[]) => Partial<ExecOutcome>;
  execs: Array<{ step: ExecStep; argv: string[]; pod: string | undefined }>;
  runnersDeleted: number;
  /** Pods blocking a rollout, whatever head is asked for; the heads asked for are recorded. */
  blocking: PodRecord[];
  blockingHeads: string[];
  /** The release's pods as the cache holds them. */
  pods: PodRecord[];
  deletedPods: Array<{ name: string; force: boolean }>;
  scaled: string[];
  suspended: string[];
  returnedCleared: number;
  nowMs: number;
}

export function workload(name: string, extra: Partial<WorkloadRecord> = {}): WorkloadRecord {
  return {
    kind: 'Deployment',
    namespace: 'airflow',
    name,
    release: 'airflow',
    component: name,
    role: 'metadata-db',
    replicas: 1,
    resourceVersion: '1',
    ...extra,
  };
}

export function pod(name: string, extra: Partial<PodRecord> = {}): PodRecord {
  return {
    namespace: 'airflow',
    name,
    release: 'airflow',
    component: 'scheduler',
    role: 'metadata-db',
    version: '3.1.0',
    head: FROM_HEAD,
    phase: 'Running',
    ready: true,
    terminating: false,
    ...extra,
  };
}

export function memoryContext(
  overrides: Partial<
    Pick<MemoryContext, 'revision' | 'backingOffNow' | 'confirmAttempts' | 'locked' | 'pod' | 'nowMs' | 'blocking'>
  > = {},
): MemoryContext {
  const ctx: MemoryContext = {
    revision: FROM_HEAD,
    backingOffNow: false,
    confirmAttempts: 3,
    reports: [],
    events: [],
    stalls: [],
    backoffs: [],
    rolledForward: [],
    workloads: [],
    restored: [],
    locked: false,
    pod: EXEC_POD,
    onExec: (_step, argv) => {
      ctx.revision = argv[4] ?? null;
      return { exitCode: 0 };
    },
    execs: [],
    runnersDeleted: 0,
    blocking: [],
    blockingHeads: [],
    pods: [],
    deletedPods: [],
    scaled: [],
    suspended: [],
    returnedCleared: 0,
    nowMs: NOW,
    drainTimeoutMs: DRAIN_TIMEOUT_MS,
    rolloutSettleMs: ROLLOUT_SETTLE_MS,
    async readRevision() {
      if (ctx.revision instanceof Error) throw ctx.revision;
      return ctx.revision;
    },
    report(report) {
      ctx.reports.push(report);
    },
    async emitEvent(_op, type, reason, message) {
      ctx.events.push({ type, reason, message });
    },
    async stall(op, reason): Promise<StepResult> {
      ctx.stalls.push(reason);
      return { wait: true, op: { ...op, stalled: { reason, since: '2026-12-01T10:00:00.000Z' } } };
    },
    backingOff: () => ctx.backingOffNow,
    backOff(_op, attempts) {
      ctx.backoffs.push(attempts);
    },
    async rollForward(op, at, why, failedStep): Promise<StepResult> {
      ctx.rolledForward.push({ at, why });
      return {
        event: 'failed',
        op: { ...op, heldReason: `rolled forward: ${why}`, heldFrom: op.phase },
        before: [failedStep],
        as: 'hold',
      };
    },
    releaseWorkloads: () => ctx.workloads,
    async restoreWorkload(_op, w, head) {
      if (w.head !== head) return false;
      ctx.restored.push(w.name);
      return true;
    },
    async migrationRunning() {
      if (ctx.locked instanceof Error) throw ctx.locked;
      return ctx.locked;
    },
    async execPod() {
      return ctx.pod;
    },
    async exec(op, step, argv) {
      ctx.execs.push({ step, argv, pod: op.execPod?.name });
      return { exitCode: undefined, timedOut: false, stdout: '', stderr: '', durationMs: 5, ...ctx.onExec(step, argv) };
    },
    async deleteRunner() {
      ctx.runnersDeleted++;
    },
    podsBlocking(_op, head) {
      ctx.blockingHeads.push(head);
      return ctx.blocking;
    },
    releasePods() {
      return ctx.pods;
    },
    async deletePod(p, force) {
      ctx.deletedPods.push({ name: p.name, force });
    },
    async scaleToZero(_op, w) {
      ctx.scaled.push(w.name);
    },
    async suspendCronJob(_op, w) {
      ctx.suspended.push(w.name);
    },
    async clearReturnedMarkers() {
      ctx.returnedCleared++;
    },
    now: () => ctx.nowMs,
    ...overrides,
  };
  return ctx;
}
