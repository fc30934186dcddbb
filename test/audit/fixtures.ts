// Sample records of each kind and a pino logger whose lines the test can read.
import pino, { type Logger } from 'pino';
import type { AdmissionRecord, OperationStepRecord, OperatorActionRecord } from '../../src/audit/records.js';

export function admissionRecord(overrides: Partial<AdmissionRecord> = {}): AdmissionRecord {
  return {
    kind: 'admission',
    at: '2025-06-01T10:00:00.000Z',
    requestUid: 'b3f1c2d4-0000-4000-8000-000000000001',
    user: 'system:serviceaccount:argocd:argocd-application-controller',
    groups: ['system:serviceaccounts', 'system:authenticated'],
    operation: 'UPDATE',
    namespace: 'data',
    release: 'airflow',
    airflowComponent: 'scheduler',
    objectKind: 'Deployment',
    objectName: 'airflow-scheduler',
    fromVersion: '3.1.0',
    toVersion: '3.0.2',
    fromRevision: 'cc92b33c6709',
    toRevision: '29ce7909c52b',
    decision: 'downgrade',
    operationId: 'op-airflow-1',
    patchSummary: 'spec.paused=true; annotations +4',
    dryRun: false,
    latencyMs: 0.42,
    warnings: ['airflow-downgrade-guard: downgrade 3.1.0 → 3.0.2 held'],
    request: {
      uid: 'b3f1c2d4-0000-4000-8000-000000000001',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      operation: 'UPDATE',
      object: { metadata: { name: 'airflow-scheduler', namespace: 'data' }, spec: { replicas: 2 } },
    },
    ...overrides,
  };
}

export function stepRecord(overrides: Partial<OperationStepRecord> = {}): OperationStepRecord {
  return {
    kind: 'operation-step',
    at: '2025-06-01T10:00:01.000Z',
    operationId: 'op-airflow-1',
    namespace: 'data',
    release: 'airflow',
    step: 'downgrade',
    event: 'end',
    outcome: 'ok',
    durationMs: 48_250,
    execPod: 'airflow-api-server-7d9f8-abcde',
    command: ['airflow', 'db', 'downgrade', '--to-version', '3.0.2', '--yes'],
    exitCode: 0,
    outputExcerpt: 'Downgrade complete',
    actor: 'airflow-downgrade-guard-5c6d7-xyz12',
    ...overrides,
  };
}

export function operatorRecord(overrides: Partial<OperatorActionRecord> = {}): OperatorActionRecord {
  return {
    kind: 'operator-action',
    at: '2025-06-01T10:05:00.000Z',
    action: 'retry',
    user: 'alice@example.com',
    namespace: 'data',
    release: 'airflow',
    operationId: 'op-airflow-1',
    reason: 'exec pod was evicted',
    outcome: 'ok',
    ...overrides,
  };
}

export interface CapturedLogger {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  text(): string;
}

export function captureLogger(): CapturedLogger {
  const raw: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(chunk: string) {
        raw.push(chunk);
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, text: () => raw.join('') };
}

/** A logger that discards everything (for timing appends without I/O noise). */
export function silentLogger(): Logger {
  return pino({ level: 'info' }, { write() {} });
}
