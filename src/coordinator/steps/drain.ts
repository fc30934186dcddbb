// Step 5, drain (order downgrade-first), or step 2 as `quiesce` (drain-first: before the downgrade):
// every DB-touching workload of the release at 0, its CronJobs suspended, then wait for the old pods;
// those outliving the drain timeout are deleted.
import { belongsTo } from '../membership.js';
import type { OperationState } from '../operation.js';
import type { PodRecord, WorkloadRecord } from '../release-view.js';
import type { StepContext, StepResult } from './context.js';

export async function drain(ctx: StepContext, op: OperationState): Promise<StepResult> {
  const first = op.phase === 'quiesce';
  // The runner ran the downgrade; in drain-first there is none yet (the downgrade follows).
  if (!first) await ctx.deleteRunner(op);
  if ((await scaleReleaseDown(ctx, op)) === 'rollout-unsettled') return { wait: true, op };
  const blocking = ctx.podsBlocking(op, op.toRevision);
  if (blocking.length > 0) return pressStragglers(ctx, drainClockStarted(ctx, op), blocking, op.toVersion);
  ctx.report({
    operation: op,
    step: first ? 'quiesce' : 'drain',
    event: 'end',
    outcome: 'ok',
    detail: `no pod of ${op.fromVersion} left`,
  });
  await ctx.emitEvent(
    op,
    'Normal',
    'Drained',
    first
      ? `No pod of ${op.fromVersion} is left; running the downgrade in a runner pod`
      : `No pod of ${op.fromVersion} is left; releasing the held rollout`,
  );
  return { event: first ? 'quiesced' : 'drained', op };
}

/**
 * Every DB-touching workload of the release at 0, its CronJobs suspended; what to restore recorded.
 * A workload the rollout may still apply (not held under the operation) waits until the rollout
 * settled: scaled by the guard first, it would meet a server-side apply without force (Helm 4,
 * `kubectl apply --server-side`) with a conflict on the replicas the guard set, and the tool's
 * rollout would fail halfway. `rollout-unsettled` while any waits.
 */
export async function scaleReleaseDown(
  ctx: StepContext,
  op: OperationState,
  only: (w: WorkloadRecord) => boolean = () => true,
): Promise<'scaled' | 'rollout-unsettled'> {
  const settled = rolloutSettled(ctx, op);
  let waiting = false;
  // All at once: every sequential round trip here keeps old pods running on the new schema longer.
  await Promise.all(
    ctx.releaseWorkloads(op).map(async (w) => {
      if (w.role !== 'metadata-db' || !only(w)) return;
      const scaled = w.kind === 'Deployment' || w.kind === 'StatefulSet';
      if (!scaled && w.kind !== 'CronJob') return;
      const pending = w.drained?.operation !== op.id || (scaled && w.replicas > 0);
      if (!pending) return;
      if (!settled && !belongsTo(op, w)) {
        waiting = true;
        return;
      }
      if (scaled) await ctx.scaleToZero(op, w);
      else await ctx.suspendCronJob(op, w);
    }),
  );
  return waiting ? 'rollout-unsettled' : 'scaled';
}

/** Whether the rollout that opened the operation has had its time to apply every workload it changes. */
export function rolloutSettled(ctx: StepContext, op: OperationState): boolean {
  return ctx.now() - Date.parse(op.openedAt) >= ctx.rolloutSettleMs;
}

/** The operation with its drain clock started (kept in the record: it survives a failover). */
export function drainClockStarted(ctx: StepContext, op: OperationState): OperationState {
  return op.drainStartedAt ? op : { ...op, drainStartedAt: new Date(ctx.now()).toISOString() };
}

/**
 * Pods that outlive the drain timeout are deleted; past twice the timeout, force-deleted, and the
 * drain counts as stalled. The clock starts at the record's drainStartedAt.
 */
export async function pressStragglers(
  ctx: StepContext,
  op: OperationState,
  blocking: PodRecord[],
  onto: string,
): Promise<StepResult> {
  const waited = ctx.now() - Date.parse(op.drainStartedAt ?? new Date(ctx.now()).toISOString());
  if (waited < ctx.drainTimeoutMs) return { wait: true, op, on: 'watch' };
  const force = waited >= 2 * ctx.drainTimeoutMs;
  for (const pod of blocking) {
    if (pod.terminating && !force) continue;
    await ctx.deletePod(pod, force);
    ctx.report({
      operation: op,
      step: 'drain',
      event: 'end',
      outcome: 'waiting',
      detail: `${force ? 'force-' : ''}deleted pod ${pod.name} still running ${pod.version ?? 'an unknown version'} after ${Math.round(waited / 1000)} s`,
    });
    await ctx.emitEvent(
      op,
      'Warning',
      'DrainTimeout',
      `Pod ${pod.name} was still running after ${Math.round(waited / 1000)} s; ${force ? 'force-' : ''}deleted it`,
    );
  }
  const names = blocking
    .map((p) => p.name)
    .sort()
    .join(', ');
  return ctx.stall(
    op,
    `drain: ${blocking.length} pod(s) of the release still run a version other than ${onto} after ${Math.round(waited / 1000)} s (${names})`,
    'watch',
  );
}
