import { describe, expect, it } from 'vitest';
import { downgradeArgv } from '../../../src/core/downgrade-command.js';
import { downgrade } from '../../../src/coordinator/steps/downgrade.js';
import { canHappen } from '../../../src/coordinator/transitions.js';
import { EXEC_POD, HALFWAY, memoryContext, operation, TO_HEAD } from './memory-context.js';

const op = operation('downgrade', { order: 'downgrade-first' });

describe('downgrade', () => {
  it('runs the downgrade in the chosen pod: downgraded, the pod remembered', async () => {
    const ctx = memoryContext();
    const result = await downgrade(ctx, op);
    expect(result).toMatchObject({ event: 'downgraded', op: { execPod: EXEC_POD } });
    expect(ctx.execs).toEqual([{ step: 'downgrade', argv: downgradeArgv(TO_HEAD), pod: EXEC_POD.name }]);
    expect(canHappen('downgrade', 'downgraded')).toBe(true);
  });

  it('waits while backing off, without touching the database', async () => {
    const ctx = memoryContext({
      backingOffNow: true,
      revision: new Error('must not be read'),
      locked: new Error('nor this'),
    });
    expect(await downgrade(ctx, op)).toEqual({ wait: true, op });
    expect(ctx.execs).toEqual([]);
  });

  it('a migration holding the database lock is waited for, shown as a stall', async () => {
    const ctx = memoryContext({ locked: true });
    expect(await downgrade(ctx, op)).toMatchObject({ wait: true });
    expect(ctx.stalls).toEqual(['a migration holds the database lock; waiting for it']);
    expect(ctx.reports).toEqual([expect.objectContaining({ step: 'downgrade', outcome: 'waiting' })]);
    expect(ctx.execs).toEqual([]);
  });

  it('a schema already at the target needs no exec', async () => {
    const ctx = memoryContext({ revision: TO_HEAD, pod: undefined });
    expect(await downgrade(ctx, op)).toEqual({ event: 'downgraded', op });
    expect(ctx.execs).toEqual([]);
  });

  it('no pod to exec in (a runner pod was started): waits for the pod watch event', async () => {
    const ctx = memoryContext({ pod: undefined });
    expect(await downgrade(ctx, op)).toEqual({ wait: true, op, on: 'watch' });
    expect(ctx.execs).toEqual([]);
  });

  it('an exec the API server refused is tried again after a backoff, until the attempts run out', async () => {
    const ctx = memoryContext({ confirmAttempts: 3 });
    ctx.onExec = () => ({ notStarted: true, error: 'exec refused: 503' });
    expect(await downgrade(ctx, operation('downgrade', { attempts: 1 }))).toMatchObject({
      wait: true,
      op: { attempts: 2, execPod: EXEC_POD },
    });
    expect(ctx.backoffs).toEqual([2]);
    // The last attempt: the schema never moved, so held.
    const last = await downgrade(ctx, operation('downgrade', { attempts: 2 }));
    expect(last).toMatchObject({ event: 'failed', op: { heldFrom: 'downgrade' } });
    expect('event' in last && last.op.heldReason).toMatch(
      /^downgrade failed in pod airflow-api-server-0 \(exec refused: 503\)/,
    );
  });

  it('a failed exec while a migration still runs: waits, the pod remembered', async () => {
    const ctx = memoryContext();
    ctx.onExec = () => {
      ctx.locked = true;
      return { timedOut: true, error: 'timed out' };
    };
    expect(await downgrade(ctx, op)).toMatchObject({ wait: true, op: { execPod: EXEC_POD } });
    expect(ctx.stalls).toEqual([]);
  });

  it('a lost exec that moved the schema to the target: downgraded', async () => {
    const ctx = memoryContext();
    ctx.onExec = () => {
      ctx.revision = TO_HEAD;
      return { error: 'connection lost' };
    };
    expect(await downgrade(ctx, op)).toMatchObject({ event: 'downgraded', op: { execPod: EXEC_POD } });
  });

  it.each([
    ['downgrade-first', 'the release keeps running it'],
    ['drain-first', 'the release stays drained while held (changing it back to 3.1.0 restores it)'],
  ] as const)('a failed exec with the schema unchanged (order %s): held, runner deleted', async (order, meanwhile) => {
    const ctx = memoryContext();
    ctx.onExec = () => ({ exitCode: 1 });
    const result = await downgrade(ctx, operation('downgrade', { order }));
    expect(result).toMatchObject({
      event: 'failed',
      op: {
        heldFrom: 'downgrade',
        heldReason: `downgrade failed in pod airflow-api-server-0 (exit code 1); the schema is unchanged at 3.1.0, ${meanwhile}`,
      },
    });
    expect(ctx.runnersDeleted).toBe(1);
    expect(ctx.rolledForward).toEqual([]);
    expect(canHappen('downgrade', 'failed')).toBe(true);
  });

  it('a downgrade that stopped halfway is rolled forward, the failed downgrade recorded first', async () => {
    const ctx = memoryContext();
    ctx.onExec = () => {
      ctx.revision = HALFWAY;
      return { exitCode: 2 };
    };
    const result = await downgrade(ctx, op);
    expect(ctx.rolledForward).toEqual([{ at: HALFWAY, why: 'exit code 2' }]);
    expect(result).toMatchObject({
      event: 'failed',
      as: 'hold',
      before: [
        {
          step: 'downgrade',
          outcome: 'failed',
          detail: `stopped at ${HALFWAY}: exit code 2`,
          at: '2026-12-01T10:00:00.000Z',
        },
      ],
      op: { execPod: EXEC_POD },
    });
  });

  it('an unreadable database is an error (the coordinator loop makes it a stall)', async () => {
    const ctx = memoryContext({ revision: new Error('connection refused') });
    await expect(downgrade(ctx, op)).rejects.toThrow('connection refused');
    expect(ctx.execs).toEqual([]);
  });
});
