// Steps 2 and 3, downgrade: wait for any migration still holding the database lock, pick the pod (or
// start a runner pod), run the downgrade there, and deal with every way it can end.
import { downgradeArgv } from '../../core/downgrade-command.js';
import { migratesSchemaByItself } from '../../core/release.js';
import type { OperationState } from '../operation.js';
import { failed, type StepContext, type StepResult } from './context.js';
import { scaleReleaseDown } from './drain.js';

export async function downgrade(ctx: StepContext, op: OperationState): Promise<StepResult> {
  if (ctx.backingOff(op)) return { wait: true, op };
  if (await ctx.migrationRunning(op)) {
    // A downgrade from an earlier attempt (lost connection, restarted guard) is still running.
    ctx.report({
      operation: op,
      step: 'downgrade',
      event: 'end',
      outcome: 'waiting',
      detail: 'a migration holds the database lock; waiting for it',
    });
    return ctx.stall(op, 'a migration holds the database lock; waiting for it');
  }
  const revision = await ctx.readRevision(op);
  if (revision === op.toRevision) return { event: 'downgraded', op };
  // downgrade-first leaves the release running, but a workload that migrates the schema up by itself
  // (the community chart's db-migrations) would undo the downgrade: it goes first.
  if (op.order === 'downgrade-first' && !(await stopSelfMigrating(ctx, op))) return { wait: true, op, on: 'watch' };

  const pod = await ctx.execPod(op);
  if (!pod) return { wait: true, op, on: 'watch' };
  const withPod: OperationState = { ...op, execPod: pod };
  const outcome = await ctx.exec(withPod, 'downgrade', downgradeArgv(op.toRevision));
  if (outcome.exitCode === 0) return { event: 'downgraded', op: withPod };
  if (outcome.notStarted && op.attempts + 1 < ctx.confirmAttempts) {
    // The API server refused the exec (429/5xx, timeout): the command never ran, so try again.
    ctx.backOff(op, op.attempts + 1);
    return { wait: true, op: { ...withPod, attempts: op.attempts + 1 } };
  }

  // Failed, hung or lost: find out where the schema is before deciding anything.
  if (await ctx.migrationRunning(withPod)) return { wait: true, op: withPod };
  const after = await ctx.readRevision(withPod);
  if (after === op.toRevision) return { event: 'downgraded', op: withPod };
  const why = outcome.error ?? `exit code ${outcome.exitCode}`;
  if (after === op.fromRevision) {
    await ctx.deleteRunner(withPod);
    const meanwhile =
      op.order === 'drain-first'
        ? `the release stays drained while held (changing it back to ${op.fromVersion} restores it)`
        : 'the release keeps running it';
    return failed(
      withPod,
      `downgrade failed in pod ${pod.name} (${why}); the schema is unchanged at ${op.fromVersion}, ${meanwhile}`,
    );
  }
  return ctx.rollForward(withPod, after, why, {
    step: 'downgrade',
    outcome: 'failed',
    at: new Date(ctx.now()).toISOString(),
    durationMs: outcome.durationMs,
    detail: `stopped at ${after ?? '(none)'}: ${why}`.slice(0, 2000),
  });
}

/** Self-migrating workloads drained (recorded like the drain's); true once none of their pods is left. */
async function stopSelfMigrating(ctx: StepContext, op: OperationState): Promise<boolean> {
  if ((await scaleReleaseDown(ctx, op, (w) => migratesSchemaByItself(w.component))) === 'rollout-unsettled')
    return false;
  return !ctx
    .releasePods(op)
    .some((p) => migratesSchemaByItself(p.component) && p.phase !== 'Succeeded' && p.phase !== 'Failed');
}
