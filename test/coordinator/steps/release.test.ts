import { describe, expect, it } from 'vitest';
import { release } from '../../../src/coordinator/steps/release.js';
import { canHappen } from '../../../src/coordinator/transitions.js';
import { FROM_HEAD, memoryContext, operation, TO_HEAD, workload } from './memory-context.js';

const op = operation('release', { admittedAs: 'dg-aaaaaaaaaaaaaaaa' });

describe('release', () => {
  it('gives every held or drained workload on the target back, and nothing else: released', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('scheduler', { holdOperation: op.id, head: TO_HEAD }),
      workload('admitted', { holdOperation: 'dg-aaaaaaaaaaaaaaaa', head: TO_HEAD }),
      workload('triggerer', { drained: { operation: op.id, replicas: 1 }, head: TO_HEAD }),
      workload('other', { holdOperation: 'dg-cccccccccccccccc', head: TO_HEAD }),
      workload('statsd', { head: TO_HEAD }),
    ];
    expect(await release(ctx, op)).toEqual({ event: 'released', op });
    expect(ctx.restored.sort()).toEqual(['admitted', 'scheduler', 'triggerer']);
    expect(ctx.reports).toEqual([
      expect.objectContaining({ step: 'release', outcome: 'ok', detail: 'released every held workload' }),
    ]);
    expect(ctx.events).toEqual([{ type: 'Normal', reason: 'Released', message: 'Schema at 3.0.2; rollout released.' }]);
    expect(canHappen('release', 'released')).toBe(true);
  });

  it('a drained workload still on the from-version stays at 0 until its own update arrives', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('scheduler', { holdOperation: op.id, head: TO_HEAD }),
      workload('worker', { kind: 'StatefulSet', drained: { operation: op.id, replicas: 3 }, head: FROM_HEAD }),
      workload('triggerer', { drained: { operation: op.id, replicas: 1 }, head: FROM_HEAD }),
    ];
    expect(await release(ctx, op)).toEqual({ event: 'released', op });
    expect(ctx.restored).toEqual(['scheduler']);
    expect(ctx.reports.at(-1)?.detail).toBe(
      'released; still on 3.1.0 and kept at 0 until their own update arrives: deployment/triggerer, statefulset/worker',
    );
    expect(ctx.events.at(-1)?.message).toBe(
      'Schema at 3.0.2; rollout released. Waiting for updates of deployment/triggerer, statefulset/worker',
    );
  });

  it('part of the release changed back to the from-version: waits, releases nothing', async () => {
    const ctx = memoryContext();
    ctx.workloads = [
      workload('scheduler', { holdOperation: op.id, head: TO_HEAD }),
      workload('webserver', { returnedFrom: op.id, head: FROM_HEAD }),
      workload('api-server', { returnedFrom: op.id, head: FROM_HEAD }),
    ];
    expect(await release(ctx, op)).toMatchObject({ wait: true });
    expect(ctx.restored).toEqual([]);
    expect(ctx.stalls).toEqual([
      'deployment/api-server, deployment/webserver changed back to 3.1.0 while the rest is held for 3.0.2: waiting for every workload to be on one of them',
    ]);
  });
});
