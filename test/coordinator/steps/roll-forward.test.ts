import { describe, expect, it } from 'vitest';
import { migrateArgv } from '../../../src/core/downgrade-command.js';
import type { StepRecord } from '../../../src/coordinator/operation.js';
import { rollForward } from '../../../src/coordinator/steps/roll-forward.js';
import { EXEC_POD, FROM_HEAD, HALFWAY, memoryContext, operation } from './memory-context.js';

const op = operation('downgrade', { execPod: EXEC_POD });
const failedStep: StepRecord = { step: 'downgrade', outcome: 'failed', at: '2026-12-01T10:00:00.000Z', durationMs: 7 };

describe('roll-forward', () => {
  it('migrates forward to the from-version in the same pod: held, recorded as downgrade failed, roll-forward ok', async () => {
    const ctx = memoryContext({ revision: HALFWAY });
    const result = await rollForward(ctx, op, HALFWAY, 'exit code 2', failedStep);
    expect(ctx.execs).toEqual([{ step: 'roll-forward', argv: migrateArgv(FROM_HEAD), pod: EXEC_POD.name }]);
    expect(ctx.runnersDeleted).toBe(1);
    expect(result).toMatchObject({
      event: 'failed',
      as: 'hold',
      before: [failedStep, { step: 'roll-forward', outcome: 'ok' }],
      op: {
        heldFrom: 'downgrade',
        heldReason: `downgrade stopped at revision ${HALFWAY} (exit code 2); migrated forward again to ${FROM_HEAD} so the running 3.1.0 matches; the release stays held`,
      },
    });
    expect('before' in result && result.before?.[1]?.detail).toBe(
      `"airflow db migrate --to-revision ${FROM_HEAD}" in pod airflow-api-server-0: exit 0; schema now at ${FROM_HEAD}`,
    );
  });

  it('a roll-forward that fails too: held for an operator, the schema where it stopped', async () => {
    const ctx = memoryContext({ revision: HALFWAY });
    ctx.onExec = () => ({ error: 'pod deleted' });
    const result = await rollForward(ctx, op, HALFWAY, 'exit code 2', failedStep);
    expect(ctx.runnersDeleted).toBe(1);
    expect(result).toMatchObject({
      event: 'failed',
      as: 'hold',
      before: [failedStep, { step: 'roll-forward', outcome: 'failed' }],
      op: {
        heldReason: `downgrade stopped at revision ${HALFWAY} (exit code 2) and rolling forward failed (pod deleted, now at ${HALFWAY}); OPERATOR ACTION NEEDED: the release stays held`,
      },
    });
  });
});
