// The return's first step, forward: the release was changed back to the from-version after the schema
// may have moved. Wait for any migration still running, then migrate forward to the from-version's
// head in a pod of that version (a runner pod when none runs). `helm rollback` runs no hooks: nobody
// else would.
import { formatArgv, migrateArgv } from '../../core/downgrade-command.js';
import type { OperationState } from '../operation.js';
import { failed, isBetween, type StepContext, type StepResult } from './context.js';
import { drainClockStarted, pressStragglers, scaleReleaseDown } from './drain.js';

export async function forward(ctx: StepContext, op: OperationState): Promise<StepResult> {
  if (ctx.backingOff(op)) return { wait: true, op };
  if (await ctx.migrationRunning(op)) {
    return ctx.stall(
      op,
      'a migration holds the database lock (the downgrade may still run in its pod); waiting for it before moving the schema forward',
    );
  }
  const revision = await ctx.readRevision(op);
  if (revision === op.fromRevision) {
    await ctx.deleteRunner(op);
    const drained = ctx.releaseWorkloads(op).some((w) => w.drained?.operation === op.id);
    ctx.report({
      operation: op,
      step: 'forward',
      event: 'end',
      outcome: 'ok',
      detail: `schema at ${op.fromRevision} (${op.fromVersion})${drained ? '; restoring the drained workloads' : '; the downgrade never ran'}`,
    });
    // A return after `done` still has its holds to release.
    if (drained || op.returnOf) return { event: 'migrated', op };
    await ctx.clearReturnedMarkers(op);
    return { event: 'untouched', op };
  }
  if (revision !== op.toRevision && !isBetween(revision, op.toRevision, op.fromRevision)) {
    return failed(
      op,
      `returning to ${op.fromVersion}: the metadata database is at revision ${revision ?? '(none)'}, neither ${op.fromRevision} nor on the way to ${op.toRevision}; nothing was changed`,
    );
  }
  const draining = await drainForReturn(ctx, op);
  if (draining) return draining;
  const pod = await ctx.execPod(op);
  if (!pod)
    return ctx.stall(
      op,
      `returning to ${op.fromVersion}: waiting for a pod of ${op.fromVersion} to run "${formatArgv(migrateArgv(op.fromRevision))}" in`,
      'watch',
    );
  const withPod: OperationState = { ...op, execPod: pod };
  const outcome = await ctx.exec(withPod, 'forward', migrateArgv(op.fromRevision));
  const after = await ctx.readRevision(withPod);
  if (after === op.fromRevision) {
    await ctx.deleteRunner(withPod);
    return { event: 'migrated', op: withPod };
  }
  if (outcome.notStarted && op.attempts + 1 < ctx.confirmAttempts) {
    ctx.backOff(op, op.attempts + 1);
    return { wait: true, op: { ...withPod, attempts: op.attempts + 1 } };
  }
  await ctx.deleteRunner(withPod);
  return failed(
    withPod,
    `returning to ${op.fromVersion}: "${formatArgv(migrateArgv(op.fromRevision))}" in pod ${pod.name} failed (${outcome.error ?? `exit code ${outcome.exitCode}`}); schema at ${after ?? '(none)'}; OPERATOR ACTION NEEDED: the release stays drained`,
  );
}

/**
 * A return after `done`, in either order: the target's pods still serve, and they cannot run on
 * the from-version's newer schema; drain them before the schema moves forward (restore gives the
 * replicas back). Undefined once none is left.
 */
async function drainForReturn(ctx: StepContext, op: OperationState): Promise<StepResult | undefined> {
  if (!op.returnOf) return undefined;
  if ((await scaleReleaseDown(ctx, op)) === 'rollout-unsettled') return { wait: true, op };
  const blocking = ctx.podsBlocking(op, op.fromRevision);
  if (blocking.length === 0) return undefined;
  return pressStragglers(ctx, drainClockStarted(ctx, op), blocking, op.fromVersion);
}
