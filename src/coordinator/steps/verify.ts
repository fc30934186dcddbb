// Step 4, verify: alembic_version is the target head after the downgrade; a schema left halfway is
// migrated forward again (the context's roll-forward) and the operation held.
import type { OperationState } from '../operation.js';
import { failed, type StepContext, type StepResult } from './context.js';

export async function verify(ctx: StepContext, op: OperationState): Promise<StepResult> {
  const revision = await ctx.readRevision(op);
  if (revision === op.toRevision) {
    ctx.report({ operation: op, step: 'verify', event: 'end', outcome: 'ok', detail: `alembic_version = ${revision}` });
    await ctx.emitEvent(
      op,
      'Normal',
      'SchemaVerified',
      `Metadata database at ${op.toVersion} schema (${revision}); draining ${op.fromVersion} pods`,
    );
    return { event: 'verified', op };
  }
  if (revision === op.fromRevision)
    return failed(op, `downgrade reported success but the schema is still at ${op.fromRevision}`);
  if (!op.execPod) return failed(op, `schema at unexpected revision ${revision ?? '(none)'} after the downgrade`);
  const found = `verification found ${revision ?? '(none)'} instead of ${op.toRevision}`;
  return ctx.rollForward(op, revision, found, {
    step: 'verify',
    outcome: 'failed',
    at: new Date().toISOString(),
    durationMs: 0,
    detail: found,
  });
}
