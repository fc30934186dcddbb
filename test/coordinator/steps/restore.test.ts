import { describe, expect, it } from 'vitest';
import { restore } from '../../../src/coordinator/steps/restore.js';
import { FROM_HEAD, memoryContext, operation, TO_HEAD, workload } from './memory-context.js';

const op = operation('restore', { admittedAs: 'dg-aaaaaaaaaaaaaaaa' });

describe('restore', () => {
  it('gives back every workload the operation held, drained or saw changed back, and nothing else', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('held', { holdOperation: 'dg-aaaaaaaaaaaaaaaa', head: FROM_HEAD }),
      workload('drained', { drained: { operation: op.id, replicas: 2 }, head: FROM_HEAD }),
      workload('returned', { returnedFrom: op.id, head: FROM_HEAD }),
      workload('other', { holdOperation: 'dg-cccccccccccccccc', head: FROM_HEAD }),
      workload('untouched', { head: FROM_HEAD }),
    ];
    expect(await restore(ctx, op)).toEqual({ event: 'restored', op });
    expect(ctx.restored.sort()).toEqual(['drained', 'held', 'returned']);
    expect(ctx.reports.at(-1)).toMatchObject({
      step: 'restore',
      outcome: 'ok',
      detail: 'every drained workload runs 3.1.0 again',
    });
  });

  it('a member still on another version keeps the step waiting (on a watch event), shown as a stall', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('scheduler', { drained: { operation: op.id, replicas: 2 }, head: TO_HEAD }),
      workload('api-server', { drained: { operation: op.id }, head: FROM_HEAD }),
    ];
    expect(await restore(ctx, op)).toMatchObject({ wait: true });
    expect(ctx.stalls).toEqual(['returning to 3.1.0: deployment/scheduler not on 3.1.0; kept at 0 until changed back']);
    expect(ctx.restored).toEqual(['api-server']);
  });

  it('a Job left behind on the version the release left is not released (it would run that version on the from-version schema)', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('run-airflow-migrations', { kind: 'Job', holdOperation: op.id, head: TO_HEAD }),
      workload('scheduler', { drained: { operation: op.id, replicas: 2 }, returnedFrom: op.id, head: FROM_HEAD }),
    ];
    expect(await restore(ctx, op)).toEqual({ event: 'restored', op });
    expect(ctx.restored).toEqual(['scheduler']);
  });
});
