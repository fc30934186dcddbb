// Messages between `serve`'s main thread (coordinator, metrics, audit) and its admission worker
// (admission-worker.ts). Everything here is structured-cloneable plain data.
import type { GuardConfig } from '../core/config.js';
import type { ReleaseState } from '../core/decide.js';
import type { DecisionRecord } from '../server/app.js';

/** What the worker starts with (workerData). */
export interface WorkerSettings {
  guard: GuardConfig;
  logLevel: string;
  certFile: string;
  keyFile: string;
  port: number;
  host: string;
  /** Post whole DecisionRecords (for the audit log); otherwise only what the metrics count. */
  fullRecords: boolean;
}

/** What the metrics count of a decision: all the main thread needs when nothing is audited. */
export type DecisionSummary = Pick<DecisionRecord, 'decision' | 'allowed' | 'kind' | 'dryRun' | 'latencyMs'>;

export function isFullRecord(record: DecisionSummary | DecisionRecord): record is DecisionRecord {
  return 'uid' in record;
}

/** Main thread -> worker. */
export type ToWorker =
  /** Release states that changed; null: the release has nothing the decision needs (forget it). */
  | { type: 'states'; entries: Array<[key: string, state: ReleaseState | null]> }
  | { type: 'ready'; ready: boolean }
  | { type: 'metrics'; id: number; text: string; contentType: string; error?: string }
  | { type: 'reload-certificate'; id: number }
  | { type: 'stop' };

/** Worker -> main thread. */
export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'start-failed'; error: string }
  /** Decisions since the last batch, in order (one message per turn of the worker's loop). */
  | { type: 'decisions'; records: Array<DecisionSummary | DecisionRecord> }
  | { type: 'metrics-request'; id: number }
  | { type: 'certificate-reloaded'; id: number; error?: string }
  | { type: 'stopped' };

export function releaseStateKey(namespace: string, release: string): string {
  return `${namespace}\u0000${release}`;
}
