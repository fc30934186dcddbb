// Messages between `serve`'s main thread (coordinator, metrics, audit) and its admission worker
// (admission-worker.ts). Everything here is structured-cloneable plain data.
import type { GuardConfig } from '../core/config.js';
import type { ReleaseState } from '../core/decide.js';
import type { ServingPair } from '../certs/source.js';
import type { DecisionRecord } from '../webhook/app.js';

/** What the worker starts with (workerData). */
export interface WorkerSettings {
  guard: GuardConfig;
  logLevel: string;
  /** The serving certificate at start; renewals come as 'certificate' messages. */
  certificate: ServingPair;
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
  /** A renewed serving certificate, for new connections. */
  | { type: 'certificate'; id: number; pair: ServingPair }
  | { type: 'stop' };

/** Worker -> main thread. */
export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'start-failed'; error: string }
  /** Decisions since the last batch, in order (one message per turn of the worker's loop). */
  | { type: 'decisions'; records: Array<DecisionSummary | DecisionRecord> }
  | { type: 'metrics-request'; id: number }
  /** The 'certificate' message of this id is served now, or why not (the previous one stays). */
  | { type: 'certificate-applied'; id: number; error?: string }
  | { type: 'stopped' };

/**
 * The release states the worker holds, as the main thread last sent them (JSON). Most watch events
 * (pod status, ReplicaSet counts) leave a release's state as it was, and a message that changes
 * nothing still costs a structured clone and wakes the worker, so only changes are sent.
 */
export class WorkerStateMirror {
  private readonly sent = new Map<string, string>();

  /** Records the state as sent and says whether it differs from what the worker holds (null: nothing held). */
  update(key: string, state: ReleaseState | null): boolean {
    const text = state === null ? undefined : JSON.stringify(state);
    if (text === this.sent.get(key)) return false;
    if (text === undefined) this.sent.delete(key);
    else this.sent.set(key, text);
    return true;
  }
}
