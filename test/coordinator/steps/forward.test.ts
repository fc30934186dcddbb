import { describe, expect, it } from 'vitest';
import { migrateArgv } from '../../../src/core/downgrade-command.js';
import { forward } from '../../../src/coordinator/steps/forward.js';
import { canHappen } from '../../../src/coordinator/transitions.js';
import {
  DRAIN_TIMEOUT_MS,
  EXEC_POD,
  FROM_HEAD,
  HALFWAY,
  memoryContext,
  NOW,
  operation,
  pod,
  ROLLOUT_SETTLE_MS,
  TO_HEAD,
  workload,
} from './memory-context.js';

const op = operation('forward');
const MIGRATE = `airflow db migrate --to-revision ${FROM_HEAD}`;

describe('forward', () => {
  it.each([TO_HEAD, HALFWAY])(
    'from %s: migrates forward in a pod of the from-version, runner deleted: migrated',
    async (revision) => {
      const ctx = memoryContext({ revision });
      expect(await forward(ctx, op)).toEqual({ event: 'migrated', op: { ...op, execPod: EXEC_POD } });
      expect(ctx.execs).toEqual([{ step: 'forward', argv: migrateArgv(FROM_HEAD), pod: EXEC_POD.name }]);
      expect(ctx.runnersDeleted).toBe(1);
      expect(canHappen('forward', 'migrated')).toBe(true);
    },
  );

  it('waits while backing off, without touching the database', async () => {
    const ctx = memoryContext({
      backingOffNow: true,
      revision: new Error('must not be read'),
      locked: new Error('nor this'),
    });
    expect(await forward(ctx, op)).toEqual({ wait: true, op });
  });

  it('a migration holding the database lock is waited for, shown as a stall', async () => {
    const ctx = memoryContext({ locked: true, revision: TO_HEAD });
    expect(await forward(ctx, op)).toMatchObject({ wait: true });
    expect(ctx.stalls).toEqual([
      'a migration holds the database lock (the downgrade may still run in its pod); waiting for it before moving the schema forward',
    ]);
    expect(ctx.execs).toEqual([]);
  });

  it('the schema never moved and workloads were drained: migrated (restore gives them back)', async () => {
    const ctx = memoryContext({ revision: FROM_HEAD });
    ctx.workloads = [workload('scheduler', { drained: { operation: op.id, replicas: 1 } })];
    expect(await forward(ctx, op)).toEqual({ event: 'migrated', op });
    expect(ctx.execs).toEqual([]);
    expect(ctx.runnersDeleted).toBe(1);
    expect(ctx.reports.at(-1)).toMatchObject({
      step: 'forward',
      outcome: 'ok',
      detail: `schema at ${FROM_HEAD} (3.1.0); restoring the drained workloads`,
    });
    expect(ctx.returnedCleared).toBe(0);
  });

  it('the schema never moved and nothing was drained: untouched, returned markers cleared', async () => {
    const ctx = memoryContext({ revision: FROM_HEAD });
    expect(await forward(ctx, op)).toEqual({ event: 'untouched', op });
    expect(ctx.returnedCleared).toBe(1);
    expect(ctx.reports.at(-1)?.detail).toBe(`schema at ${FROM_HEAD} (3.1.0); the downgrade never ran`);
    expect(canHappen('forward', 'untouched')).toBe(true);
  });

  it('a return after done with the schema already forward: migrated, its holds still to release', async () => {
    const ctx = memoryContext({ revision: FROM_HEAD });
    const back = operation('forward', { returnOf: 'dg-aaaaaaaaaaaaaaaa' });
    expect(await forward(ctx, back)).toEqual({ event: 'migrated', op: back });
    expect(ctx.returnedCleared).toBe(0);
  });

  it('a revision on neither side: held, nothing run', async () => {
    const ctx = memoryContext({ revision: '1949afb29106' });
    const result = await forward(ctx, op);
    expect(result).toMatchObject({
      event: 'failed',
      op: {
        heldFrom: 'forward',
        heldReason: `returning to 3.1.0: the metadata database is at revision 1949afb29106, neither ${FROM_HEAD} nor on the way to ${TO_HEAD}; nothing was changed`,
      },
    });
    expect(ctx.execs).toEqual([]);
    expect(canHappen('forward', 'failed')).toBe(true);
  });

  it('no pod of the from-version to run in (a runner was started): waits on the pod watch, shown as a stall', async () => {
    const ctx = memoryContext({ revision: TO_HEAD, pod: undefined });
    expect(await forward(ctx, op)).toMatchObject({ wait: true });
    expect(ctx.stalls).toEqual([`returning to 3.1.0: waiting for a pod of 3.1.0 to run "${MIGRATE}" in`]);
  });

  it('an exec the API server refused is tried again after a backoff', async () => {
    const ctx = memoryContext({ revision: TO_HEAD, confirmAttempts: 3 });
    ctx.onExec = () => ({ notStarted: true, error: 'exec refused: 429' });
    expect(await forward(ctx, operation('forward', { attempts: 1 }))).toMatchObject({
      wait: true,
      op: { attempts: 2, execPod: EXEC_POD },
    });
    expect(ctx.backoffs).toEqual([2]);
    expect(ctx.runnersDeleted).toBe(0);
  });

  it('a failed forward move: held for an operator, runner deleted, the release stays drained', async () => {
    const ctx = memoryContext({ revision: TO_HEAD });
    ctx.onExec = () => ({ exitCode: 1 });
    expect(await forward(ctx, op)).toMatchObject({
      event: 'failed',
      op: {
        execPod: EXEC_POD,
        heldReason: `returning to 3.1.0: "${MIGRATE}" in pod airflow-api-server-0 failed (exit code 1); schema at ${TO_HEAD}; OPERATOR ACTION NEEDED: the release stays drained`,
      },
    });
    expect(ctx.runnersDeleted).toBe(1);
  });

  it('a return after done drains the target pods before the schema moves, then migrates', async () => {
    const back = operation('forward', { returnOf: 'dg-aaaaaaaaaaaaaaaa' });
    const ctx = memoryContext({
      revision: TO_HEAD,
      blocking: [pod('airflow-scheduler-0', { version: '3.0.2', head: TO_HEAD })],
    });
    // The rollback applied the scheduler (held under the return), not yet the CronJob: scaled by the
    // guard first, its server-side apply (Helm 4) would conflict on what the guard set.
    ctx.workloads = [
      workload('scheduler', { replicas: 2, head: TO_HEAD, holdOperation: back.id }),
      workload('cleanup', { kind: 'CronJob' }),
    ];
    expect(await forward(ctx, back)).toEqual({ wait: true, op: back });
    expect(ctx.scaled).toEqual(['scheduler']);
    expect(ctx.suspended).toEqual([]);
    expect(ctx.execs).toEqual([]);

    ctx.nowMs = NOW + ROLLOUT_SETTLE_MS;
    ctx.workloads[0] = workload('scheduler', {
      replicas: 0,
      head: TO_HEAD,
      holdOperation: back.id,
      drained: { operation: back.id, replicas: 2 },
    });
    expect(await forward(ctx, back)).toEqual({
      wait: true,
      op: { ...back, drainStartedAt: new Date(NOW + ROLLOUT_SETTLE_MS).toISOString() },
      on: 'watch',
    });
    expect(ctx.scaled).toEqual(['scheduler']);
    expect(ctx.suspended).toEqual(['cleanup']);
    expect(ctx.blockingHeads).toEqual([FROM_HEAD]);
    expect(ctx.execs).toEqual([]);

    ctx.blocking = [];
    expect(await forward(ctx, back)).toMatchObject({ event: 'migrated' });
    expect(ctx.execs).toHaveLength(1);
  });

  it('a return after done whose target pods outlive the drain timeout: deleted, a stall naming the from-version', async () => {
    const back = operation('forward', {
      returnOf: 'dg-aaaaaaaaaaaaaaaa',
      drainStartedAt: new Date(NOW - DRAIN_TIMEOUT_MS).toISOString(),
    });
    const ctx = memoryContext({
      revision: TO_HEAD,
      blocking: [pod('airflow-scheduler-0', { version: '3.0.2', head: TO_HEAD })],
    });
    expect(await forward(ctx, back)).toMatchObject({ wait: true });
    expect(ctx.deletedPods).toEqual([{ name: 'airflow-scheduler-0', force: false }]);
    expect(ctx.stalls).toEqual([
      'drain: 1 pod(s) of the release still run a version other than 3.1.0 after 60 s (airflow-scheduler-0)',
    ]);
    expect(ctx.execs).toEqual([]);
  });

  it('an unreadable database is an error (the coordinator loop makes it a stall)', async () => {
    const ctx = memoryContext({ revision: new Error('connection refused') });
    await expect(forward(ctx, op)).rejects.toThrow('connection refused');
    expect(ctx.execs).toEqual([]);
  });
});
