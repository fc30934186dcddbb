import { describe, expect, it } from 'vitest';
import { drain } from '../../../src/coordinator/steps/drain.js';
import { canHappen } from '../../../src/coordinator/transitions.js';
import {
  DRAIN_TIMEOUT_MS,
  memoryContext,
  NOW,
  operation,
  pod,
  ROLLOUT_SETTLE_MS,
  TO_HEAD,
  workload,
} from './memory-context.js';

const op = operation('drain');
const STARTED = new Date(NOW).toISOString();

function releaseWorkloads() {
  return [
    workload('scheduler', { replicas: 2 }),
    workload('api-server', { kind: 'StatefulSet', replicas: 1 }),
    workload('triggerer', { replicas: 0, drained: { operation: op.id, replicas: 1 } }), // drained already
    workload('webserver', { replicas: 0 }), // at 0 by its owner: drained, so its 0 is recorded
    workload('cleanup', { kind: 'CronJob', replicas: 0 }),
    workload('old-cleanup', { kind: 'CronJob', replicas: 0, drained: { operation: op.id, suspend: false } }),
    workload('statsd', { role: 'no-metadata-db' }),
  ];
}

describe('drain', () => {
  it('scales every DB-touching workload to 0 and suspends CronJobs; no old pod left: drained', async () => {
    const ctx = memoryContext({ nowMs: NOW + ROLLOUT_SETTLE_MS });
    ctx.workloads = releaseWorkloads();
    expect(await drain(ctx, op)).toEqual({ event: 'drained', op });
    expect(ctx.scaled.sort()).toEqual(['api-server', 'scheduler', 'webserver']);
    expect(ctx.suspended).toEqual(['cleanup']);
    expect(ctx.runnersDeleted).toBe(1);
    expect(ctx.blockingHeads).toEqual([TO_HEAD]);
    expect(ctx.reports).toEqual([
      expect.objectContaining({ step: 'drain', outcome: 'ok', detail: 'no pod of 3.1.0 left' }),
    ]);
    expect(ctx.events).toEqual([
      { type: 'Normal', reason: 'Drained', message: 'No pod of 3.1.0 is left; releasing the held rollout' },
    ]);
    expect(canHappen('drain', 'drained')).toBe(true);
  });

  it('before the rollout settled: drains what it applied (held under the operation) at once, leaves the rest to it', async () => {
    // Helm 4 applies server-side without force: a workload the guard scaled before Helm applied it
    // fails Helm's apply with a conflict on spec.replicas (found on the real control plane).
    const ctx = memoryContext({ nowMs: NOW + ROLLOUT_SETTLE_MS - 1 });
    ctx.workloads = [
      workload('scheduler', { replicas: 2, holdOperation: op.id }),
      workload('cleanup', { kind: 'CronJob', replicas: 0, holdOperation: op.id }),
      workload('worker', { kind: 'StatefulSet', replicas: 3 }), // not applied by the rollout yet
      workload('old-cleanup', { kind: 'CronJob', replicas: 0 }), // nor this one
    ];
    expect(await drain(ctx, op)).toEqual({ wait: true, op });
    expect(ctx.scaled).toEqual(['scheduler']);
    expect(ctx.suspended).toEqual(['cleanup']);
    expect(ctx.reports).toEqual([]);

    ctx.nowMs = NOW + ROLLOUT_SETTLE_MS;
    ctx.workloads = [
      workload('scheduler', { replicas: 0, holdOperation: op.id, drained: { operation: op.id, replicas: 2 } }),
      workload('cleanup', {
        kind: 'CronJob',
        replicas: 0,
        holdOperation: op.id,
        drained: { operation: op.id, suspend: false },
      }),
      workload('worker', { kind: 'StatefulSet', replicas: 3 }),
      workload('old-cleanup', { kind: 'CronJob', replicas: 0 }),
    ];
    expect(await drain(ctx, op)).toEqual({ event: 'drained', op });
    expect(ctx.scaled).toEqual(['scheduler', 'worker']);
    expect(ctx.suspended).toEqual(['cleanup', 'old-cleanup']);
  });

  it('before the rollout settled, every workload applied by it: drained without waiting', async () => {
    const ctx = memoryContext({ nowMs: NOW });
    ctx.workloads = [
      workload('scheduler', { replicas: 2, holdOperation: op.id }),
      workload('statsd', { role: 'no-metadata-db' }),
    ];
    expect(await drain(ctx, op)).toEqual({ event: 'drained', op });
    expect(ctx.scaled).toEqual(['scheduler']);
  });

  it('as quiesce (drain-first) before the downgrade: no runner to delete, quiesced', async () => {
    const ctx = memoryContext();
    const quiesce = operation('quiesce', { order: 'drain-first' });
    expect(await drain(ctx, quiesce)).toEqual({ event: 'quiesced', op: quiesce });
    expect(ctx.runnersDeleted).toBe(0);
    expect(ctx.reports.at(-1)).toMatchObject({ step: 'quiesce', outcome: 'ok' });
    expect(ctx.events.at(-1)?.message).toBe('No pod of 3.1.0 is left; running the downgrade in a runner pod');
    expect(canHappen('quiesce', 'quiesced')).toBe(true);
  });

  it('old pods still running: waits for their watch events, the drain clock started in the record', async () => {
    const ctx = memoryContext({ blocking: [pod('airflow-scheduler-0')] });
    expect(await drain(ctx, op)).toEqual({ wait: true, op: { ...op, drainStartedAt: STARTED }, on: 'watch' });
    expect(ctx.deletedPods).toEqual([]);
    expect(ctx.stalls).toEqual([]);
  });

  it('keeps the drain clock it started (it survives a failover)', async () => {
    const started = operation('drain', { drainStartedAt: new Date(NOW - 1000).toISOString() });
    const ctx = memoryContext({ blocking: [pod('airflow-scheduler-0')] });
    expect(await drain(ctx, started)).toEqual({ wait: true, op: started, on: 'watch' });
  });

  it('past the drain timeout: deletes the pods not yet terminating, shown as a stall', async () => {
    const started = operation('drain', { drainStartedAt: new Date(NOW - DRAIN_TIMEOUT_MS).toISOString() });
    const ctx = memoryContext({
      blocking: [pod('airflow-worker-0', { terminating: true }), pod('airflow-scheduler-0')],
    });
    expect(await drain(ctx, started)).toMatchObject({ wait: true });
    expect(ctx.deletedPods).toEqual([{ name: 'airflow-scheduler-0', force: false }]);
    expect(ctx.events).toEqual([
      {
        type: 'Warning',
        reason: 'DrainTimeout',
        message: 'Pod airflow-scheduler-0 was still running after 60 s; deleted it',
      },
    ]);
    expect(ctx.reports).toEqual([
      expect.objectContaining({
        step: 'drain',
        outcome: 'waiting',
        detail: 'deleted pod airflow-scheduler-0 still running 3.1.0 after 60 s',
      }),
    ]);
    expect(ctx.stalls).toEqual([
      'drain: 2 pod(s) of the release still run a version other than 3.0.2 after 60 s (airflow-scheduler-0, airflow-worker-0)',
    ]);
  });

  it('past twice the drain timeout: force-deletes every pod left, terminating or not', async () => {
    const started = operation('drain', { drainStartedAt: new Date(NOW - 2 * DRAIN_TIMEOUT_MS).toISOString() });
    const ctx = memoryContext({ blocking: [pod('airflow-worker-0', { terminating: true, version: undefined })] });
    expect(await drain(ctx, started)).toMatchObject({ wait: true });
    expect(ctx.deletedPods).toEqual([{ name: 'airflow-worker-0', force: true }]);
    expect(ctx.reports.at(0)?.detail).toBe(
      'force-deleted pod airflow-worker-0 still running an unknown version after 120 s',
    );
    expect(ctx.events.at(0)?.message).toBe('Pod airflow-worker-0 was still running after 120 s; force-deleted it');
  });
});
