// An in-memory StepContext: the database revision (or a read error) set by the test, and every
// report, Event, stall, backoff and roll-forward recorded for assertions.
import { newOperation, type OperationState, type Phase } from '../../../src/coordinator/operation.js';
import type { WorkloadRecord } from '../../../src/coordinator/release-view.js';
import type { StepContext, StepReport, StepResult } from '../../../src/coordinator/steps/context.js';

export const FROM_HEAD = 'cc92b33c6709';
export const TO_HEAD = '29ce7909c52b';

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

export function memoryContext(
  overrides: Partial<Pick<MemoryContext, 'revision' | 'backingOffNow' | 'confirmAttempts'>> = {},
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
    ...overrides,
  };
  return ctx;
}
