// Step 6, release: every workload the operation held or drained gets its held spec back and rolls out
// the target; one still on the from-version stays at 0 until its own update arrives.
import { belongsTo, returnedFrom } from '../membership.js';
import type { OperationState } from '../operation.js';
import type { StepContext, StepResult } from './context.js';

export async function release(ctx: StepContext, op: OperationState): Promise<StepResult> {
  const mine = ctx.releaseWorkloads(op);
  const returned = mine.filter((w) => returnedFrom(op, w));
  if (returned.length > 0) {
    // Part of the release was changed back to the from-version (a rollback being applied): releasing
    // the rest onto the target would leave no single schema every workload matches.
    const names = returned
      .map((w) => `${w.kind.toLowerCase()}/${w.name}`)
      .sort()
      .join(', ');
    return ctx.stall(
      op,
      `${names} changed back to ${op.fromVersion} while the rest is held for ${op.toVersion}: waiting for every workload to be on one of them`,
    );
  }
  const waiting: string[] = [];
  // All at once: the outage lasts until the last workload is released.
  await Promise.all(
    mine.map(async (w) => {
      if (!belongsTo(op, w) && w.drained?.operation !== op.id) return;
      const restored = await ctx.restoreWorkload(op, w, op.toRevision);
      if (!restored) waiting.push(`${w.kind.toLowerCase()}/${w.name}`);
    }),
  );
  waiting.sort();
  const detail = waiting.length
    ? `released; still on ${op.fromVersion} and kept at 0 until their own update arrives: ${waiting.join(', ')}`
    : 'released every held workload';
  ctx.report({ operation: op, step: 'release', event: 'end', outcome: 'ok', detail });
  await ctx.emitEvent(
    op,
    'Normal',
    'Released',
    `Schema at ${op.toVersion}; rollout released. ${waiting.length ? `Waiting for updates of ${waiting.join(', ')}` : ''}`.trim(),
  );
  return { event: 'released', op };
}
