import { describe, expect, it } from 'vitest';
import { verify } from '../../../src/coordinator/steps/verify.js';
import { FROM_HEAD, memoryContext, operation, TO_HEAD } from './memory-context.js';

const execPod = { name: 'airflow-api-server-0', container: 'api-server', component: 'api-server', runner: false };

describe('verify', () => {
  it('the target head: verified, with a SchemaVerified Event', async () => {
    const ctx = memoryContext({ revision: TO_HEAD });
    expect(await verify(ctx, operation('verify', { execPod }))).toMatchObject({ event: 'verified' });
    expect(ctx.events).toEqual([
      {
        type: 'Normal',
        reason: 'SchemaVerified',
        message: `Metadata database at 3.0.2 schema (${TO_HEAD}); draining 3.1.0 pods`,
      },
    ]);
    expect(ctx.reports.at(-1)).toMatchObject({ step: 'verify', outcome: 'ok', detail: `alembic_version = ${TO_HEAD}` });
  });

  it('still at the from-version: held, no roll-forward', async () => {
    const ctx = memoryContext({ revision: FROM_HEAD });
    expect(await verify(ctx, operation('verify', { execPod }))).toMatchObject({
      event: 'failed',
      op: { heldFrom: 'verify', heldReason: `downgrade reported success but the schema is still at ${FROM_HEAD}` },
    });
    expect(ctx.rolledForward).toEqual([]);
  });

  it('halfway with the pod known: rolled forward and held', async () => {
    const ctx = memoryContext({ revision: 'dfee8bd5d574' });
    const result = await verify(ctx, operation('verify', { execPod }));
    expect(result).toMatchObject({ event: 'failed', as: 'hold', before: [{ step: 'verify', outcome: 'failed' }] });
    expect(ctx.rolledForward).toEqual([
      { at: 'dfee8bd5d574', why: `verification found dfee8bd5d574 instead of ${TO_HEAD}` },
    ]);
  });

  it('an unexpected revision with no pod to roll forward in: held', async () => {
    const ctx = memoryContext({ revision: null });
    expect(await verify(ctx, operation('verify'))).toMatchObject({
      event: 'failed',
      op: { heldReason: 'schema at unexpected revision (none) after the downgrade' },
    });
    expect(ctx.rolledForward).toEqual([]);
  });
});
