import { describe, expect, it } from 'vitest';
import { confirm } from '../../../src/coordinator/steps/confirm.js';
import { canHappen } from '../../../src/coordinator/transitions.js';
import { FROM_HEAD, memoryContext, operation, TO_HEAD } from './memory-context.js';

const HALFWAY = 'fe199e1abd77'; // the head of 3.0.3, between 3.0.2 and 3.1.0

describe('confirm', () => {
  it.each([
    ['downgrade-first', FROM_HEAD, 'at-from'],
    ['downgrade-first', HALFWAY, 'at-from'],
    ['drain-first', FROM_HEAD, 'drain-first'],
    ['drain-first', HALFWAY, 'drain-first'],
    ['drain-first', TO_HEAD, 'at-target'],
  ] as const)('order %s, database at %s: %s', async (order, revision, event) => {
    const ctx = memoryContext({ revision });
    const result = await confirm(ctx, operation('confirm', { order, attempts: 2 }));
    expect(result).toMatchObject({ event, op: { attempts: 0 } });
    expect(canHappen('confirm', event)).toBe(true);
    expect(ctx.reports.at(-1)).toMatchObject({ step: 'confirm', outcome: 'ok' });
  });

  it('a revision on neither side is held, nothing changed', async () => {
    const result = await confirm(memoryContext({ revision: '1949afb29106' }), operation('confirm'));
    expect(result).toMatchObject({ event: 'failed', op: { heldFrom: 'confirm' } });
    expect('event' in result && result.op.heldReason).toMatch(
      /at revision 1949afb29106, which is neither 3\.1\.0 .* nothing was changed/,
    );
  });

  it('an unreadable database is a stall with backoff, then held after the attempts', async () => {
    const ctx = memoryContext({ revision: new Error('connection refused') });
    const first = await confirm(ctx, operation('confirm'));
    expect(first).toMatchObject({ wait: true, op: { attempts: 1 } });
    expect(ctx.stalls).toEqual(['cannot read the metadata database: connection refused']);
    expect(ctx.backoffs).toEqual([1]);
    const last = await confirm(ctx, operation('confirm', { attempts: 2 }));
    expect(last).toMatchObject({
      event: 'failed',
      op: { attempts: 3, heldReason: 'cannot read the metadata database: connection refused' },
    });
  });

  it('waits while backing off, without reading the database', async () => {
    const ctx = memoryContext({ backingOffNow: true, revision: new Error('must not be read') });
    expect(await confirm(ctx, operation('confirm'))).toMatchObject({ wait: true });
    expect(ctx.reports).toEqual([]);
  });

  it('a return after a finished downgrade goes forward from the target or on the way; elsewhere it is held', async () => {
    const op = operation('confirm', { returnOf: 'dg-aaaaaaaaaaaaaaaa' });
    for (const revision of [TO_HEAD, HALFWAY, FROM_HEAD]) {
      expect(await confirm(memoryContext({ revision }), op), revision).toMatchObject({ event: 'returned' });
    }
    expect(canHappen('confirm', 'returned')).toBe(true);
    const result = await confirm(memoryContext({ revision: '1949afb29106' }), op);
    expect(result).toMatchObject({ event: 'failed' });
    expect('event' in result && result.op.heldReason).toMatch(/^returning to 3\.1\.0: .* nothing was changed/);
  });
});
