// Prometheus metrics on a registry of our own (never prom-client's global one, so tests and
// embedders can create several). Admission-path helpers reuse label children cached in nested
// Maps: no string keys or label objects are built per request.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuditStats } from '../audit/log.js';
import { describeCertificate } from '../certs/generate.js';

export const METRIC_PREFIX = 'airflow_downgrade_guard_';

// Admission answers take tens of microseconds; a slow cache read or a big patch a few ms. The top
// buckets reach the webhook's 5 s timeout, so an alert can see answers that come near it.
export const ADMISSION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5, 4,
];
// Steps and execs: a drain is seconds to minutes; a schema downgrade can take many minutes.
export const STEP_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

type AdmissionLabels = 'decision' | 'kind' | 'dry_run';

interface CounterChild {
  inc(value?: number): void;
}

export interface GuardMetrics {
  registry: Registry;
  admissionRequests: Counter<AdmissionLabels>;
  admissionDuration: Histogram;
  operations: Counter<'outcome'>;
  operationsInProgress: Gauge;
  /** Open operations waiting on something that may never come (a Secret, the database, a pod, a drain). */
  operationsStalled: Gauge;
  operationStepDuration: Histogram<'step' | 'outcome'>;
  execDuration: Histogram<'outcome'>;
  auditBufferDepth: Gauge;
  auditRecordsDropped: Counter;
  auditRecordsWritten: Counter;
  /** Counts one admission answer and observes its latency (seconds). */
  recordAdmission(decision: string, kind: string, dryRun: boolean, seconds: number): void;
  /** Lets scrapes read the audit log's counters (buffer depth, written, dropped). */
  observeAuditLog(source: { stats(): AuditStats }): void;
  /** The serving certificate now served (PEM), at start and after every renewal: its expiry is exported. */
  observeCertificate(certPem: string): void;
}

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): GuardMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  let auditSource: { stats(): AuditStats } | undefined;
  let seenWritten = 0;
  let seenDropped = 0;

  const admissionRequests = new Counter({
    name: `${METRIC_PREFIX}admission_requests_total`,
    help: 'AdmissionReview requests answered, by decision, workload kind and dry-run flag.',
    labelNames: ['decision', 'kind', 'dry_run'] as const,
    registers: [registry],
  });
  const admissionDuration = new Histogram({
    name: `${METRIC_PREFIX}admission_duration_seconds`,
    help: 'Time from receiving an AdmissionReview to sending the answer.',
    buckets: ADMISSION_BUCKETS,
    registers: [registry],
  });
  const operations = new Counter({
    name: `${METRIC_PREFIX}operations_total`,
    help: 'Downgrade operations finished, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const operationsStalled = new Gauge({
    name: `${METRIC_PREFIX}operations_stalled`,
    help: 'Open downgrade operations waiting on something that may never come; held after the stall timeout.',
    registers: [registry],
  });
  const operationsInProgress = new Gauge({
    name: `${METRIC_PREFIX}operations_in_progress`,
    help: 'Downgrade operations currently open.',
    registers: [registry],
  });
  const operationStepDuration = new Histogram({
    name: `${METRIC_PREFIX}operation_step_duration_seconds`,
    help: 'Duration of operation steps, by step and outcome.',
    labelNames: ['step', 'outcome'] as const,
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  const execDuration = new Histogram({
    name: `${METRIC_PREFIX}exec_duration_seconds`,
    help: 'Duration of commands run by exec in Airflow pods, by outcome.',
    labelNames: ['outcome'] as const,
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  const auditBufferDepth = new Gauge({
    name: `${METRIC_PREFIX}audit_buffer_depth`,
    help: 'Audit records waiting in memory for the audit store.',
    registers: [registry],
    collect() {
      if (auditSource) this.set(auditSource.stats().buffered);
    },
  });
  // Counters follow the audit log's own totals at scrape time, so appends pay nothing for them.
  const auditRecordsWritten = new Counter({
    name: `${METRIC_PREFIX}audit_records_written_total`,
    help: 'Audit records written to the audit store.',
    registers: [registry],
    collect() {
      if (!auditSource) return;
      const { written } = auditSource.stats();
      if (written > seenWritten) this.inc(written - seenWritten);
      seenWritten = written;
    },
  });
  const auditRecordsDropped = new Counter({
    name: `${METRIC_PREFIX}audit_records_dropped_total`,
    help: 'Audit records lost because the in-memory buffer overflowed while the store was unreachable.',
    registers: [registry],
    collect() {
      if (!auditSource) return;
      const { dropped } = auditSource.stats();
      if (dropped > seenDropped) this.inc(dropped - seenDropped);
      seenDropped = dropped;
    },
  });

  const certificateExpiry = new Gauge({
    name: `${METRIC_PREFIX}certificate_expiry_timestamp_seconds`,
    help: 'When the serving certificate expires (Unix time); absent until it is loaded.',
    // A label, so that the series is absent (not 0, which would read as expired) before loading.
    labelNames: ['certificate'] as const,
    registers: [registry],
  });

  // decision → kind → [dry_run=false child, dry_run=true child]
  const admissionChildren = new Map<string, Map<string, [CounterChild, CounterChild]>>();
  const admissionChild = (decision: string, kind: string, dryRun: boolean): CounterChild => {
    let byKind = admissionChildren.get(decision);
    if (!byKind) admissionChildren.set(decision, (byKind = new Map()));
    let pair = byKind.get(kind);
    if (!pair) {
      pair = [admissionRequests.labels(decision, kind, 'false'), admissionRequests.labels(decision, kind, 'true')];
      byKind.set(kind, pair);
    }
    return pair[dryRun ? 1 : 0];
  };

  return {
    registry,
    admissionRequests,
    admissionDuration,
    operations,
    operationsInProgress,
    operationStepDuration,
    operationsStalled,
    execDuration,
    auditBufferDepth,
    auditRecordsDropped,
    auditRecordsWritten,
    recordAdmission(decision, kind, dryRun, seconds) {
      admissionChild(decision, kind, dryRun).inc();
      admissionDuration.observe(seconds);
    },
    observeAuditLog(source) {
      auditSource = source;
      seenWritten = 0;
      seenDropped = 0;
    },
    observeCertificate(pem) {
      // A pair that is not a certificate is refused by the server before it is served; keep the last value.
      try {
        certificateExpiry.labels('serving').set(describeCertificate(pem).notAfter.getTime() / 1000);
      } catch {
        // not a certificate
      }
    },
  };
}
