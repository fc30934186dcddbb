// The main thread's side of the admission worker (admission-worker.ts): starts it, keeps its copy
// of each release's state current, answers its /metrics and decision messages, and stops it.
import { Worker } from 'node:worker_threads';
import type { ReleaseState } from '../core/decide.js';
import type { ServingPair } from '../certs/source.js';
import { releaseKey } from '../core/release.js';
import type { DecisionRecord } from '../webhook/app.js';
import type { Logger } from '../log/logger.js';
import {
  WorkerStateMirror,
  type DecisionSummary,
  type FromWorker,
  type ToWorker,
  type WorkerSettings,
} from './admission-protocol.js';

export interface AdmissionWorkerOptions {
  settings: WorkerSettings;
  releaseState: (namespace: string, release: string) => ReleaseState;
  ready: () => boolean;
  /** Whole DecisionRecords when settings.fullRecords, summaries otherwise. */
  onDecision: (record: DecisionSummary | DecisionRecord) => void;
  metrics: () => Promise<{ text: string; contentType: string }>;
  /** The worker died or failed after it started: serve cannot admit anything any more. */
  onCrash: (error: Error) => void;
  logger: Logger;
}

export interface AdmissionWorker {
  /** The port the worker listens on; rejects when it could not start (unusable certificate, port taken). */
  listening: Promise<number>;
  /** Marks a release's state as changed: the worker gets the new state once this tick's changes are in. */
  releaseChanged(namespace: string, release: string): void;
  /** Serves a renewed certificate to new connections; rejects (and the previous one stays) when it is unusable. */
  setCertificate(pair: ServingPair): Promise<void>;
  stop(): Promise<void>;
}

/** Readiness has no change event (it is every cache's first list): checked this often. */
const READY_POLL_MS = 50;

const WORKER_URL = new URL('./admission-worker.js', import.meta.url);

/**
 * Starts the worker now; releaseChanged works at once (messages wait for the worker to come up), so
 * the coordinator can start right after this and none of its first list is missed.
 */
export function startAdmissionWorker(options: AdmissionWorkerOptions): AdmissionWorker {
  const worker = new Worker(WORKER_URL, { workerData: options.settings, name: 'admission' });
  const send = (message: ToWorker): void => worker.postMessage(message);
  const dirty = new Map<string, [namespace: string, release: string]>();
  const mirror = new WorkerStateMirror();
  let flushScheduled = false;
  let ready = false;
  let stopping = false;
  let started = false;
  let exited = false;
  let nextCertificate = 0;
  const certificates = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  let stopped: () => void = () => {};

  const flush = (): void => {
    flushScheduled = false;
    if (dirty.size === 0) return;
    const entries: Array<[string, ReleaseState | null]> = [];
    for (const [key, [namespace, release]] of dirty) {
      const state = significant(options.releaseState(namespace, release));
      if (mirror.update(key, state)) entries.push([key, state]);
    }
    dirty.clear();
    if (entries.length > 0) send({ type: 'states', entries });
  };
  const checkReady = (): void => {
    const now = options.ready();
    if (now === ready) return;
    flush(); // the states the caches listed reach the worker before it reports ready
    ready = now;
    send({ type: 'ready', ready });
  };

  const recordDecision = (record: DecisionSummary | DecisionRecord): void => {
    try {
      options.onDecision(record);
    } catch (error) {
      options.logger.error({ err: (error as Error).message }, 'recording an admission decision failed');
    }
  };
  const answerMetrics = (id: number): void => {
    options.metrics().then(
      ({ text, contentType }) => send({ type: 'metrics', id, text, contentType }),
      (error: unknown) =>
        send({ type: 'metrics', id, text: '', contentType: 'text/plain', error: (error as Error).message }),
    );
  };

  let crashed = false;
  const crash = (error: Error): void => {
    if (crashed || stopping) return;
    crashed = true;
    options.onCrash(error);
  };

  const listening = new Promise<number>((resolve, reject) => {
    worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'listening':
          started = true;
          resolve(message.port);
          return;
        case 'start-failed':
          reject(new Error(message.error));
          return;
        case 'decisions':
          for (const record of message.records) recordDecision(record);
          return;
        case 'metrics-request':
          answerMetrics(message.id);
          return;
        case 'certificate-applied': {
          const pending = certificates.get(message.id);
          certificates.delete(message.id);
          if (message.error !== undefined) pending?.reject(new Error(message.error));
          else pending?.resolve();
          return;
        }
        case 'stopped':
          stopped();
          return;
      }
    });
    worker.on('error', (error) => {
      if (!started) reject(error);
      else crash(error);
    });
    worker.on('exit', (code) => {
      exited = true;
      for (const pending of certificates.values())
        pending.reject(new Error(`admission worker exited with code ${code}`));
      certificates.clear();
      if (!started) reject(new Error(`admission worker exited with code ${code} before listening`));
      else crash(new Error(`admission worker exited with code ${code}`));
    });
  });
  const readyTimer = setInterval(checkReady, READY_POLL_MS);
  readyTimer.unref();
  const whenListening = listening.catch(async (error: unknown) => {
    stopping = true;
    clearInterval(readyTimer);
    await worker.terminate();
    throw error;
  });

  return {
    listening: whenListening,
    releaseChanged(namespace, release) {
      dirty.set(releaseKey(namespace, release), [namespace, release]);
      if (flushScheduled || stopping) return;
      flushScheduled = true;
      setImmediate(flush);
    },
    setCertificate(pair) {
      const id = nextCertificate++;
      return new Promise((resolve, reject) => {
        certificates.set(id, { resolve, reject });
        send({ type: 'certificate', id, pair });
      });
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      clearInterval(readyTimer);
      if (exited) return;
      // The worker closes its server first; decisions it posted before that are still delivered here.
      await new Promise<void>((resolve) => {
        stopped = resolve;
        worker.once('exit', () => resolve());
        send({ type: 'stop' });
      });
      await worker.terminate();
    },
  };
}

/** A release without records, operation or DB revision needs no entry: the worker's default is the same. */
function significant(state: ReleaseState): ReleaseState | null {
  const keys = Object.keys(state);
  const empty = keys.length === 1 && keys[0] === 'workloads' && (state.workloads?.length ?? 0) === 0;
  return empty ? null : state;
}
