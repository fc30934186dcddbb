import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createMetrics, metricsHandler, registryExposition } from '../../src/metrics/index.js';
import type { AuditStats } from '../../src/audit/log.js';

const NAMES = [
  'airflow_downgrade_guard_admission_requests_total',
  'airflow_downgrade_guard_admission_duration_seconds',
  'airflow_downgrade_guard_operations_total',
  'airflow_downgrade_guard_operations_in_progress',
  'airflow_downgrade_guard_operation_step_duration_seconds',
  'airflow_downgrade_guard_exec_duration_seconds',
  'airflow_downgrade_guard_audit_buffer_depth',
  'airflow_downgrade_guard_audit_records_dropped_total',
  'airflow_downgrade_guard_audit_records_written_total',
];

describe('metrics', () => {
  it('expose every metric with its prefix, plus Node process metrics, on GET /metrics', async () => {
    const metrics = createMetrics();
    const app = express();
    app.get('/metrics', metricsHandler(registryExposition(metrics.registry)));
    const response = await request(app).get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe(metrics.registry.contentType);
    for (const name of NAMES) expect(response.text).toContain(`# TYPE ${name} `);
    expect(response.text).toContain('process_cpu_user_seconds_total');
    expect(response.text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('are independent per registry (never the global one)', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.recordAdmission('downgrade', 'Deployment', false, 0.0003);
    expect(await b.registry.metrics()).not.toContain('decision="downgrade"');
    expect(await a.registry.metrics()).toContain('decision="downgrade"');
  });

  it('count admissions by decision, kind and dry-run and observe their latency', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordAdmission('downgrade', 'Deployment', false, 0.0003);
    metrics.recordAdmission('downgrade', 'Deployment', false, 0.0004);
    metrics.recordAdmission('downgrade', 'Deployment', true, 0.002);
    metrics.recordAdmission('pass-through', 'Job', false, 0.00005);
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'airflow_downgrade_guard_admission_requests_total{decision="downgrade",kind="Deployment",dry_run="false"} 2',
    );
    expect(text).toContain(
      'airflow_downgrade_guard_admission_requests_total{decision="downgrade",kind="Deployment",dry_run="true"} 1',
    );
    expect(text).toContain(
      'airflow_downgrade_guard_admission_requests_total{decision="pass-through",kind="Job",dry_run="false"} 1',
    );
    expect(text).toContain('airflow_downgrade_guard_admission_duration_seconds_bucket{le="0.0001"} 1');
    expect(text).toContain('airflow_downgrade_guard_admission_duration_seconds_bucket{le="0.0005"} 3');
    expect(text).toContain('airflow_downgrade_guard_admission_duration_seconds_count 4');
  });

  it('follow the audit log counters at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const stats: AuditStats = { buffered: 7, written: 10, dropped: 0, storeUp: true };
    metrics.observeAuditLog({ stats: () => stats });
    let text = await metrics.registry.metrics();
    expect(text).toContain('airflow_downgrade_guard_audit_buffer_depth 7');
    expect(text).toContain('airflow_downgrade_guard_audit_records_written_total 10');
    expect(text).toContain('airflow_downgrade_guard_audit_records_dropped_total 0');
    Object.assign(stats, { buffered: 100, written: 15, dropped: 3 });
    text = await metrics.registry.metrics();
    expect(text).toContain('airflow_downgrade_guard_audit_buffer_depth 100');
    expect(text).toContain('airflow_downgrade_guard_audit_records_written_total 15');
    expect(text).toContain('airflow_downgrade_guard_audit_records_dropped_total 3');
  });

  it('record operations, steps and exec durations with their labels', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.operationsInProgress.inc();
    metrics.operationStepDuration.observe({ step: 'downgrade', outcome: 'ok' }, 42);
    metrics.execDuration.observe({ outcome: 'ok' }, 41);
    metrics.operations.inc({ outcome: 'released' });
    const text = await metrics.registry.metrics();
    expect(text).toContain('airflow_downgrade_guard_operations_in_progress 1');
    expect(text).toContain(
      'airflow_downgrade_guard_operation_step_duration_seconds_count{step="downgrade",outcome="ok"} 1',
    );
    expect(text).toContain('airflow_downgrade_guard_exec_duration_seconds_sum{outcome="ok"} 41');
    expect(text).toContain('airflow_downgrade_guard_operations_total{outcome="released"} 1');
  });

  it('keep recordAdmission cheap', () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const decisions = ['pass-through', 'forward', 'same-head', 'downgrade'];
    const kinds = ['Deployment', 'StatefulSet', 'Job', 'CronJob'];
    for (let i = 0; i < 1000; i++) metrics.recordAdmission(decisions[i % 4]!, kinds[i % 4]!, i % 2 === 0, 0.0001); // warm up
    // The cheapest of several batches: time the code, not the moments another process had the CPU.
    const n = 10_000;
    const batches = Array.from({ length: 10 }, () => {
      const started = performance.now();
      for (let i = 0; i < n; i++) metrics.recordAdmission(decisions[i % 4]!, kinds[(i >> 2) % 4]!, i % 2 === 0, 0.0001);
      return ((performance.now() - started) * 1000) / n;
    });
    expect(Math.min(...batches)).toBeLessThan(5);
  });
});

describe('certificate expiry gauge', () => {
  it('exports the expiry of the certificate served, renewals included', async () => {
    const { describeCertificate, generateCertificates } = await import('../../src/certs/generate.js');
    const metrics = createMetrics({ defaultMetrics: false });
    const value = async () =>
      (await metrics.registry.getSingleMetric('airflow_downgrade_guard_certificate_expiry_timestamp_seconds')!.get())
        .values[0]?.value;
    expect(await value()).toBeUndefined();
    for (const days of [30, 90]) {
      const certs = generateCertificates({
        service: 'airflow-downgrade-guard',
        namespace: 'guard',
        now: new Date(Date.now() - (365 - days) * 86_400_000),
      });
      metrics.observeCertificate(certs.cert);
      expect(await value()).toBe(describeCertificate(certs.cert).notAfter.getTime() / 1000);
    }
    metrics.observeCertificate('not a certificate');
    expect(await value()).toBeGreaterThan(Date.now() / 1000);
  });
});
