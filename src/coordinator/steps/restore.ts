// The return's last step, restore: after the forward move every workload the operation held, drained
// or saw changed back runs the from-version again; one still on another version keeps it waiting.
// A Job left behind (held on the version the release left) is never released: it would run that
// version on the from-version's schema (the coordinator deletes it as it records the return).
import { belongsTo, leftBehind, returnedFrom } from '../membership.js';
import type { OperationState } from '../operation.js';
import type { StepContext, StepResult } from './context.js';

export async function restore(ctx: StepContext, op: OperationState): Promise<StepResult> {
  const waiting: string[] = [];
  await Promise.all(
    ctx.releaseWorkloads(op).map(async (w) => {
      if (!belongsTo(op, w) && w.drained?.operation !== op.id && !returnedFrom(op, w)) return;
      if (leftBehind(op, w)) return;
      if (!(await ctx.restoreWorkload(op, w, op.fromRevision))) waiting.push(`${w.kind.toLowerCase()}/${w.name}`);
    }),
  );
  if (waiting.length > 0) {
    return ctx.stall(
      op,
      `returning to ${op.fromVersion}: ${waiting.sort().join(', ')} not on ${op.fromVersion}; kept at 0 until changed back`,
      'watch',
    );
  }
  ctx.report({
    operation: op,
    step: 'restore',
    event: 'end',
    outcome: 'ok',
    detail: `every drained workload runs ${op.fromVersion} again`,
  });
  return { event: 'restored', op };
}
