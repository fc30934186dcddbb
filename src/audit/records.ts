// The audit record kinds. Field names are camelCase everywhere: in Postgres (jsonb), in the pino
// log lines (`msg: 'audit'`), in `audit --output json` and in the query API.

export const RECORD_KINDS = ['admission', 'operation-step', 'operator-action'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/** What the webhook decided for one AdmissionReview. Open set: the webhook may add decisions. */
export type AdmissionDecision =
  | 'pass-through'
  | 'forward'
  | 'same-head'
  | 'downgrade'
  | 'join-operation'
  | 'return'
  | 'cancel-hold'
  | 'unknown-version'
  | 'denied'
  | 'break-glass'
  | 'trusted-user'
  | (string & {});

export type OperationStep =
  | 'confirm'
  | 'choose-exec-pod'
  | 'downgrade'
  | 'verify'
  | 'drain'
  | 'release'
  | 'roll-forward'
  | 'hold'
  | 'retry'
  | 'abort'
  | (string & {});

export type StepEvent = 'start' | 'end';
export type StepOutcome = 'ok' | 'failed' | 'skipped' | 'held';
export type OperatorActionName = 'retry' | 'abort' | 'break-glass';

export interface AdmissionRecord {
  kind: 'admission';
  /** ISO 8601 timestamp. */
  at: string;
  requestUid: string;
  user: string;
  groups: string[];
  operation: 'CREATE' | 'UPDATE';
  namespace: string;
  release: string;
  /** Airflow component (scheduler, api-server, …); named so it cannot clash with the logger's own `component`. */
  airflowComponent: string;
  /** Kubernetes kind of the admitted object (Deployment, StatefulSet, Job, CronJob). */
  objectKind: string;
  objectName: string;
  fromVersion?: string;
  toVersion?: string;
  fromRevision?: string;
  toRevision?: string;
  decision: AdmissionDecision;
  operationId?: string;
  /** e.g. "spec.paused=true; annotations +4"; '' when nothing was patched. */
  patchSummary: string;
  dryRun: boolean;
  breakGlassReason?: string;
  latencyMs: number;
  warnings: string[];
  /** The AdmissionReview `request` as received (Secret data redacted before storing), for `review --file`. */
  request?: unknown;
}

export interface OperationStepRecord {
  kind: 'operation-step';
  at: string;
  operationId: string;
  namespace: string;
  release: string;
  step: OperationStep;
  event: StepEvent;
  /** Set on `end` events. */
  outcome?: StepOutcome;
  durationMs?: number;
  execPod?: string;
  command?: string[];
  exitCode?: number;
  /** Bounded tail of the command's output (see OUTPUT_EXCERPT_BYTES). */
  outputExcerpt?: string;
  error?: string;
  /** What the step found or did, in words (e.g. "database at cc92b33c6709"). */
  detail?: string;
  /** Guard replica (pod name) or CLI user that ran the step. */
  actor: string;
}

export interface OperatorActionRecord {
  kind: 'operator-action';
  at: string;
  action: OperatorActionName;
  user: string;
  namespace: string;
  release: string;
  operationId?: string;
  reason?: string;
  /** 'ok' when the action took effect, 'failed' (with error) when it was refused. */
  outcome: 'ok' | 'failed';
  error?: string;
}

export type AuditRecord = AdmissionRecord | OperationStepRecord | OperatorActionRecord;

type WithOptionalAt<T> = T extends { at: string } ? Omit<T, 'at'> & { at?: string | Date } : never;
/** What callers append: `at` defaults to now. */
export type AuditRecordInput = WithOptionalAt<AuditRecord>;

/** Output excerpts keep the last 4 KiB: the end of a failed migration says why it failed. */
export const OUTPUT_EXCERPT_BYTES = 4096;

export function outputExcerpt(output: string, maxBytes = OUTPUT_EXCERPT_BYTES): string {
  const bytes = Buffer.from(output, 'utf8');
  if (bytes.length <= maxBytes) return output;
  // Cut on a character boundary: skip UTF-8 continuation bytes at the start of the tail.
  let start = bytes.length - maxBytes;
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  return `…${bytes.subarray(start).toString('utf8')}`;
}

/** The user (or actor) a record is attributed to. */
export function recordUser(record: AuditRecord): string {
  return record.kind === 'operation-step' ? record.actor : record.user;
}

/** Admission decision or operator action: what `--decision` filters on (steps have none). */
export function recordDecision(record: AuditRecord): string | undefined {
  switch (record.kind) {
    case 'admission':
      return record.decision;
    case 'operation-step':
      return undefined;
    case 'operator-action':
      return record.action;
  }
}
