// The admission endpoint of `serve` in a worker thread: its own isolate and heap, so the
// coordinator's garbage collection (watch streams, API traffic) cannot pause an admission request.
// The main thread posts each release's state when it changes and readiness; this thread answers
// POST /mutate from that copy synchronously and posts its decisions back, in batches, for metrics and audit.
// The protocol's messages are in admission-protocol.ts.
import { parentPort, workerData } from 'node:worker_threads';
import type { ReleaseState } from '../core/decide.js';
import { releaseKey } from '../core/release.js';
import { createAdmissionApp, type AdmissionApp, type DecisionRecord } from '../webhook/app.js';
import { startHttpsServer, type RunningHttpsServer } from '../webhook/https.js';
import { createLogger } from '../log/logger.js';
import { type DecisionSummary, type FromWorker, type ToWorker, type WorkerSettings } from './admission-protocol.js';

if (!parentPort) throw new Error('admission-worker.js runs only as a worker thread of serve');
const port = parentPort;
const settings = workerData as WorkerSettings;
const logger = createLogger({ level: settings.logLevel });

const states = new Map<string, ReleaseState>();
let ready = false;
let nextMetricsRequest = 0;
const metricsRequests = new Map<number, (reply: Extract<ToWorker, { type: 'metrics' }>) => void>();

function post(message: FromWorker): void {
  port.postMessage(message);
}

// A release nobody deployed (or not yet seen) has no records: the same answer the caches give.
// The core only reads the state, so the stored one is handed out as it is.
const NO_RECORDS: ReleaseState = Object.freeze({
  workloads: Object.freeze([]) as unknown as ReleaseState['workloads'],
});

function releaseState(namespace: string, release: string): ReleaseState {
  return states.get(releaseKey(namespace, release)) ?? NO_RECORDS;
}

// Decisions go out in batches, after the responses: audited records once per turn of the loop,
// metric summaries every SUMMARY_BATCH_MS (fewer wake-ups of the main thread under load).
const SUMMARY_BATCH_MS = 50;
let decisions: Array<DecisionSummary | DecisionRecord> = [];

function queueDecision(record: DecisionRecord): void {
  const { decision, allowed, kind, dryRun, latencyMs } = record;
  decisions.push(settings.fullRecords ? record : { decision, allowed, kind, dryRun, latencyMs });
  if (decisions.length > 1) return;
  if (settings.fullRecords) setImmediate(postDecisions);
  else setTimeout(postDecisions, SUMMARY_BATCH_MS);
}

function postDecisions(): void {
  if (decisions.length === 0) return;
  const records = decisions;
  decisions = [];
  try {
    post({ type: 'decisions', records });
  } catch (error) {
    logger.error(
      { err: (error as Error).message, count: records.length },
      'decision records could not be sent for metrics and audit',
    );
  }
}

function collectMetrics(): Promise<Extract<ToWorker, { type: 'metrics' }>> {
  const id = nextMetricsRequest++;
  return new Promise((resolve) => {
    metricsRequests.set(id, resolve);
    post({ type: 'metrics-request', id });
  });
}

function buildApp(): AdmissionApp {
  return createAdmissionApp({
    config: settings.guard,
    releaseState,
    logger,
    ready: () => (ready ? { ready: true } : { ready: false, reason: 'caches are still listing the cluster' }),
    onDecision: queueDecision,
    metrics: async () => {
      const reply = await collectMetrics();
      if (reply.error !== undefined) throw new Error(reply.error);
      return reply;
    },
  });
}

function onMessage(server: RunningHttpsServer, message: ToWorker): void {
  switch (message.type) {
    case 'states':
      for (const [key, state] of message.entries) {
        if (state) states.set(key, state);
        else states.delete(key);
      }
      return;
    case 'ready':
      ready = message.ready;
      return;
    case 'metrics':
      metricsRequests.get(message.id)?.(message);
      metricsRequests.delete(message.id);
      return;
    case 'certificate':
      try {
        server.setCertificate(message.pair);
        post({ type: 'certificate-applied', id: message.id });
      } catch (error) {
        post({ type: 'certificate-applied', id: message.id, error: (error as Error).message });
      }
      return;
    case 'stop':
      void server.close().finally(() => {
        postDecisions();
        post({ type: 'stopped' });
        port.close();
      });
      return;
  }
}

// Messages that arrive before the server listens (states, readiness) are applied once it does.
let server: RunningHttpsServer | undefined;
const early: ToWorker[] = [];
port.on('message', (message: ToWorker) => {
  if (server) onMessage(server, message);
  else early.push(message);
});

async function main(): Promise<void> {
  try {
    server = await startHttpsServer(buildApp(), {
      certificate: settings.certificate,
      port: settings.port,
      host: settings.host,
    });
  } catch (error) {
    post({ type: 'start-failed', error: (error as Error).message });
    port.close();
    return;
  }
  for (const message of early.splice(0)) onMessage(server, message);
  post({ type: 'listening', port: server.port });
}

void main();
