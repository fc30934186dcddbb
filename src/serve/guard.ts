// `serve`: the HTTPS admission endpoint and the coordinator in one process, wired to Kubernetes,
// the audit log, metrics and certificates.
import { readFile } from 'node:fs/promises';
import { createAuditLog, type AuditLog } from '../audit/log.js';
import { outputExcerpt } from '../audit/records.js';
import { describeCertificate } from '../certs/generate.js';
import type { ServingPair } from '../certs/source.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { DEFAULT_COORDINATOR_OPTIONS } from '../coordinator/options.js';
import type { StepReport } from '../coordinator/steps/context.js';
import { Cluster } from '../k8s/cluster.js';
import { createExecRunner } from '../k8s/exec.js';
import { KubeRest, loadKubeConfig } from '../k8s/rest.js';
import { createMetrics, registryExposition, type GuardMetrics } from '../metrics/index.js';
import type { DecisionRecord } from '../webhook/app.js';
import { createLogger, type Logger } from '../log/logger.js';
import { isFullRecord } from './admission-protocol.js';
import { startAdmissionWorker, type AdmissionWorker } from './admission-thread.js';
import { certificateSource } from './certificates.js';
import type { ServeConfig } from './config.js';
import { lowerMainThreadPriority } from './thread-priority.js';

export interface RunningGuard {
  port: number;
  coordinator: Coordinator;
  metrics: GuardMetrics;
  audit?: AuditLog;
  logger: Logger;
  stop(): Promise<void>;
}

function patchSummary(record: DecisionRecord): string {
  if (record.patch.operations === 0) return '';
  return (
    record.patch.paths.slice(0, 8).join('; ') +
    (record.patch.paths.length > 8 ? `; +${record.patch.paths.length - 8} more` : '')
  );
}

function auditAdmission(audit: AuditLog | undefined, record: DecisionRecord): void {
  if (!audit) return;
  audit.append({
    kind: 'admission',
    requestUid: record.uid,
    user: record.user,
    groups: record.groups,
    operation: record.operation === 'UPDATE' ? 'UPDATE' : 'CREATE',
    namespace: record.namespace,
    release: record.release ?? '',
    airflowComponent: record.component ?? '',
    objectKind: record.kind,
    objectName: record.name,
    ...(record.from?.version ? { fromVersion: record.from.version } : {}),
    ...(record.to?.version ? { toVersion: record.to.version } : {}),
    ...(record.from?.revision ? { fromRevision: record.from.revision } : {}),
    ...(record.to?.revision ? { toRevision: record.to.revision } : {}),
    decision: record.allowed ? record.decision : 'denied',
    ...(record.operationId ? { operationId: record.operationId } : {}),
    patchSummary: patchSummary(record),
    dryRun: record.dryRun,
    ...(record.details.breakGlass ? { breakGlassReason: record.details.breakGlass.reason } : {}),
    latencyMs: record.latencyMs,
    warnings: record.warnings,
    request: (record.admissionReview as { request?: unknown } | undefined)?.request ?? record.admissionReview,
  });
}

function auditStep(audit: AuditLog | undefined, identity: string, report: StepReport): void {
  if (!audit) return;
  const op = report.operation;
  audit.append({
    kind: 'operation-step',
    operationId: op.id,
    namespace: op.namespace,
    release: op.release,
    step: report.step,
    event: report.event,
    ...(report.outcome && report.outcome !== 'waiting' ? { outcome: report.outcome } : {}),
    ...(report.durationMs !== undefined ? { durationMs: report.durationMs } : {}),
    ...(report.execPod ? { execPod: report.execPod } : {}),
    ...(report.command ? { command: report.command } : {}),
    ...(report.exitCode !== undefined ? { exitCode: report.exitCode } : {}),
    ...(report.output ? { outputExcerpt: outputExcerpt(report.output) } : {}),
    ...(report.error ? { error: report.error } : {}),
    ...(report.detail || report.outcome === 'waiting'
      ? { detail: [report.outcome === 'waiting' ? 'waiting' : undefined, report.detail].filter(Boolean).join(': ') }
      : {}),
    actor: identity,
  });
}

function certificateFields(pair: ServingPair): { notAfter?: string; fingerprint256?: string } {
  try {
    const info = describeCertificate(pair.cert);
    return { notAfter: info.notAfter.toISOString(), fingerprint256: info.fingerprint256 };
  } catch {
    return {}; // not a certificate: applying it fails and says so
  }
}

/** A dead admission worker means a dead webhook: exit loudly so Kubernetes restarts the pod. */
function exitOnCrash(logger: Logger): (error: Error) => void {
  return (error) => {
    logger.fatal({ err: error.message }, 'admission worker died; exiting so the pod is restarted');
    process.exit(1);
  };
}

export async function startGuard(
  config: ServeConfig,
  logger: Logger = createLogger({ level: config.logLevel }),
): Promise<RunningGuard> {
  const kubeConfig = loadKubeConfig(config.kubeconfig);
  const rest = new KubeRest(kubeConfig);
  const cluster = new Cluster(rest, {
    onRetry: (error, attempt) =>
      logger.warn({ err: (error as Error).message, attempt }, 'Kubernetes API call failed; retrying'),
  });
  const metrics = createMetrics();
  const audit = config.auditDatabaseUrl ? createAuditLog({ databaseUrl: config.auditDatabaseUrl, logger }) : undefined;
  if (audit) {
    metrics.observeAuditLog(audit);
    // Applies the audit schema migrations now; when the store is down it keeps retrying in the background.
    void audit.start().then((up) => {
      if (!up) logger.warn('audit store unreachable at start: records are buffered until it returns');
    });
  } else logger.warn('no audit database configured (ADG_AUDIT_DATABASE_URL): audit records go to the log only');

  const stalled = new Set<string>();
  const coordinator = new Coordinator(
    {
      ...DEFAULT_COORDINATOR_OPTIONS,
      config: config.guard,
      identity: config.identity,
      namespaces: config.watchNamespaces,
      leaseDurationSeconds: config.leaseDurationSeconds,
      execTimeoutMs: config.execTimeoutMs,
      maxConcurrentExecs: config.maxConcurrentExecs,
      drainTimeoutMs: config.drainTimeoutMs,
      rolloutSettleMs: config.rolloutSettleMs,
      stallTimeoutMs: config.stallTimeoutMs,
      order: config.order,
      resyncMs: config.resyncMs,
      pollMs: config.pollMs,
      ...(config.metadataDatabaseUrl ? { databaseUrlOverride: config.metadataDatabaseUrl } : {}),
      imageResolution: {
        registry: {
          mirrors: config.guard.registry.mirrors,
          ca: await Promise.all(config.guard.registry.caFiles.map((file) => readFile(file, 'utf8'))),
        },
        tagTtlMs: config.guard.registry.tagTtlMs,
        probeTimeoutMs: config.guard.registry.probeTimeoutMs,
      },
    },
    {
      kubeConfig,
      rest,
      cluster,
      exec: createExecRunner(kubeConfig),
      logger: logger.child({ component: 'coordinator' }),
      hooks: {
        onStep: (report) => {
          auditStep(audit, config.identity, report);
          if (report.event === 'end' && report.durationMs !== undefined && report.outcome !== 'waiting') {
            metrics.operationStepDuration.observe(
              { step: report.step, outcome: report.outcome ?? 'ok' },
              report.durationMs / 1000,
            );
            if (report.step === 'downgrade' || report.step === 'roll-forward') {
              metrics.execDuration.observe({ outcome: report.outcome ?? 'ok' }, report.durationMs / 1000);
            }
          }
        },
        onPhase: (op) => {
          if (stalled.delete(op.id)) metrics.operationsStalled.set(stalled.size);
          if (op.phase === 'done' || op.phase === 'held' || op.phase === 'aborted' || op.phase === 'cancelled') {
            metrics.operations.inc({ outcome: op.phase === 'done' ? 'completed' : op.phase });
          }
        },
        onReleaseChange: (namespace, release) => admission?.releaseChanged(namespace, release),
        onResolution: (record) => {
          audit?.append({
            kind: 'operation-step',
            operationId: record.operationId,
            namespace: record.namespace,
            release: record.release,
            step: 'resolve',
            event: 'end',
            outcome: record.outcome === 'kept' ? 'held' : 'ok',
            ...(record.durationMs !== undefined ? { durationMs: record.durationMs } : {}),
            detail: `${record.workload}: ${record.reason}${record.digest ? ` (${record.digest})` : ''}`,
            actor: config.identity,
          });
          if (record.durationMs !== undefined && record.method !== undefined)
            metrics.operationStepDuration.observe(
              { step: 'resolve', outcome: record.method === 'cache' ? 'cache' : record.outcome },
              record.durationMs / 1000,
            );
        },
        onStall: (op, reason) => {
          if (reason === undefined) stalled.delete(op.id);
          else stalled.add(op.id);
          metrics.operationsStalled.set(stalled.size);
        },
      },
    },
  );
  // The serving certificate from its source; renewals go to the running server the same way in every
  // mode. The first renewal comes an interval after start, so the worker below exists by then.
  const certificates = certificateSource(config, cluster, logger);
  let admission: AdmissionWorker | undefined;
  let certificate: ServingPair;
  try {
    certificate = await certificates.start((renewed) => {
      admission?.setCertificate(renewed).then(
        () => {
          metrics.observeCertificate(renewed.cert);
          logger.info({ source: certificates.origin, ...certificateFields(renewed) }, 'serving a renewed certificate');
        },
        (error: unknown) =>
          logger.error(
            { err: (error as Error).message, source: certificates.origin },
            'renewed serving certificate not usable; keeping the current one',
          ),
      );
    });
  } catch (error) {
    if (audit) await audit.close();
    rest.close();
    throw error;
  }
  logger.info(
    { certMode: config.certMode, source: certificates.origin, ...certificateFields(certificate) },
    'serving certificate loaded',
  );
  metrics.observeCertificate(certificate.cert);
  // Admission runs in a worker thread (own isolate and heap): the coordinator's garbage collection
  // cannot pause it. It is started before the coordinator's caches so it sees their first list.
  admission = startAdmissionWorker({
    settings: {
      guard: config.guard,
      logLevel: config.logLevel,
      certificate,
      port: config.port,
      host: config.host,
      fullRecords: audit !== undefined,
    },
    releaseState: (namespace, release) => coordinator.releaseState(namespace, release),
    ready: () => coordinator.ready,
    onDecision: (record) => {
      metrics.recordAdmission(
        record.allowed ? record.decision : 'denied',
        record.kind,
        record.dryRun,
        record.latencyMs / 1000,
      );
      if (isFullRecord(record)) auditAdmission(audit, record);
    },
    metrics: registryExposition(metrics.registry),
    onCrash: exitOnCrash(logger),
    logger,
  });
  // The admission thread exists now; from here on the main thread (and what it starts) yields to it.
  lowerMainThreadPriority(config.coordinatorNice, logger);
  coordinator.start();
  let port: number;
  try {
    port = await admission.listening;
  } catch (error) {
    certificates.stop();
    await coordinator.stop();
    if (audit) await audit.close();
    rest.close();
    throw error;
  }
  logger.info(
    { port, identity: config.identity, namespaces: config.watchNamespaces },
    'airflow-downgrade-guard serving',
  );

  return {
    port,
    coordinator,
    metrics,
    ...(audit ? { audit } : {}),
    logger,
    async stop() {
      certificates.stop();
      await admission.stop();
      await coordinator.stop();
      if (audit) await audit.close();
      rest.close();
    },
  };
}
