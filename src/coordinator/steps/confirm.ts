// Step 1, confirm: where is the schema now? It decides the operation's first move (or, for a return
// after a finished downgrade, that the schema goes forward again).
import type { OperationState } from '../operation.js';
import { failed, isBetween, type StepContext, type StepResult } from './context.js';

export async function confirm(ctx: StepContext, op: OperationState): Promise<StepResult> {
  if (ctx.backingOff(op)) return { wait: true, op };
  let revision: string | null;
  try {
    revision = await ctx.readRevision(op);
  } catch (error) {
    const attempts = op.attempts + 1;
    const message = (error as Error).message;
    if (attempts >= ctx.confirmAttempts)
      return failed({ ...op, attempts }, `cannot read the metadata database: ${message}`);
    ctx.report({
      operation: op,
      step: 'confirm',
      event: 'end',
      outcome: 'waiting',
      error: message,
      detail: `attempt ${attempts}`,
    });
    ctx.backOff(op, attempts);
    return ctx.stall({ ...op, attempts }, `cannot read the metadata database: ${message}`);
  }
  if (op.returnOf) return confirmReturn(ctx, op, revision);
  const detail = `database at ${revision ?? '(fresh)'}; running ${op.fromVersion} (${op.fromRevision}); target ${op.toVersion} (${op.toRevision})`;
  ctx.report({ operation: op, step: 'confirm', event: 'end', outcome: 'ok', detail });
  if (revision === op.toRevision) return { event: 'at-target', op: { ...op, attempts: 0 } };
  if (revision === op.fromRevision || isBetween(revision, op.toRevision, op.fromRevision)) {
    return { event: op.order === 'drain-first' ? 'drain-first' : 'at-from', op: { ...op, attempts: 0 } };
  }
  return failed(
    op,
    `the metadata database is at revision ${revision ?? '(none)'}, which is neither ${op.fromVersion} (${op.fromRevision}) nor the target ${op.toVersion} (${op.toRevision}); nothing was changed`,
  );
}

/** A return after a finished downgrade: the schema must be on the way between the two heads. */
function confirmReturn(ctx: StepContext, op: OperationState, revision: string | null): StepResult {
  if (
    revision === op.toRevision ||
    revision === op.fromRevision ||
    isBetween(revision, op.toRevision, op.fromRevision)
  ) {
    ctx.report({
      operation: op,
      step: 'confirm',
      event: 'end',
      outcome: 'ok',
      detail: `return after ${op.returnOf}: database at ${revision}; moving it forward to ${op.fromVersion} (${op.fromRevision})`,
    });
    return { event: 'returned', op: { ...op, attempts: 0 } };
  }
  return failed(
    op,
    `returning to ${op.fromVersion}: the metadata database is at revision ${revision ?? '(none)'}, neither ${op.toRevision} nor on the way to ${op.fromRevision}; nothing was changed`,
  );
}
