// A downgrade that stopped halfway is migrated forward again with the newer image, in the pod it ran
// in; the operation is held either way. Recorded as: <failed step> failed, roll-forward ok|failed, hold held.
import { formatArgv, migrateArgv } from '../../core/downgrade-command.js';
import type { OperationState, StepRecord } from '../operation.js';
import { failed, type StepContext, type StepResult } from './context.js';

export async function rollForward(
  ctx: StepContext,
  op: OperationState,
  at: string | null,
  why: string,
  failedStep: StepRecord,
): Promise<StepResult> {
  const argv = migrateArgv(op.fromRevision);
  const outcome = await ctx.exec(op, 'roll-forward', argv);
  const after = await ctx.readRevision(op);
  await ctx.deleteRunner(op);
  const rolled = after === op.fromRevision;
  const record: StepRecord = {
    step: 'roll-forward',
    outcome: rolled ? 'ok' : 'failed',
    at: new Date(ctx.now()).toISOString(),
    durationMs: outcome.durationMs,
    detail:
      `"${formatArgv(argv)}" in pod ${op.execPod?.name ?? '(none)'}: ${outcome.error ?? `exit ${outcome.exitCode}`}; schema now at ${after ?? '(none)'}`.slice(
        0,
        2000,
      ),
  };
  const held = rolled
    ? failed(
        op,
        `downgrade stopped at revision ${at ?? '(none)'} (${why}); migrated forward again to ${op.fromRevision} so the running ${op.fromVersion} matches; the release stays held`,
      )
    : failed(
        op,
        `downgrade stopped at revision ${at ?? '(none)'} (${why}) and rolling forward failed (${outcome.error ?? `exit ${outcome.exitCode}`}, now at ${after ?? '(none)'}); OPERATOR ACTION NEEDED: the release stays held`,
      );
  return { ...held, before: [failedStep, record], as: 'hold' };
}
