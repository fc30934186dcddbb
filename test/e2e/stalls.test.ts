// Issue 17 item 3: an operation waiting on something that may never come says so at once — a
// Warning Event on the held workloads, the reason in the operation record (and so in `status`) —
// and after --stall-timeout-ms it is held with that reason. The community chart case: no
// `<release>-metadata` Secret.
import { afterEach, describe, expect, it } from 'vitest';
import { operationStatus } from '../../src/coordinator/operator-actions.js';
import { formatStatusTable } from '../../src/cli/commands/status.js';
import { eventsOf, releaseReady, startE2E, waitFor, type E2E, type ReleaseSpec } from './harness.js';
import { imitatedHelm } from './helm-imitation.js';

let e2e: E2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

describe('stalls', () => {
  it('no metadata Secret: a DowngradeStalled Warning and the reason in the record at once, held after the stall timeout', async () => {
    e2e = await startE2E();
    const e = e2e;
    const s: ReleaseSpec = { release: 'community', namespace: 'community', version: '3.1.0' };
    await e.installRelease(s);
    await e.admin.delete('Secret', s.namespace, `${s.release}-metadata`);
    await e.startGuard('guard', ['--stall-timeout-ms', '3000']);
    const t0 = Date.now();
    await imitatedHelm(e).upgrade(s, '3.0.2', { hook: 'none' });

    const stalled = await waitFor(
      'stall in the record',
      () => e.operation(s.namespace, s.release)?.stalled && e.operation(s.namespace, s.release),
      10_000,
      25,
    );
    const shownMs = Date.now() - t0;
    expect(stalled.phase).toBe('confirm');
    expect(stalled.stalled?.reason).toMatch(/metadata Secret community\/community-metadata not found/);
    const warning = await waitFor(
      'DowngradeStalled Warning',
      () => eventsOf(e, s.namespace).find((ev) => ev.reason === 'DowngradeStalled'),
      10_000,
      25,
    );
    expect(warning.type).toBe('Warning');
    expect(warning.message).toMatch(/metadata Secret .* not found/);
    expect(formatStatusTable([operationStatus(stalled)])).toMatch(
      /stalled since .*metadata Secret community\/community-metadata not found/,
    );

    const held = await waitFor(
      'held after the stall timeout',
      () => e.operation(s.namespace, s.release)?.phase === 'held' && e.operation(s.namespace, s.release),
      30_000,
      50,
    );
    expect(held.heldFrom).toBe('confirm');
    expect(held.heldReason).toMatch(
      /^stalled for \d+ s: cannot read the metadata database: metadata Secret community\/community-metadata not found/,
    );
    // Events are queued, not awaited, by the coordinator: the Warning follows the record moments later.
    await waitFor(
      'DowngradeHeld Warning',
      () => eventsOf(e, s.namespace).some((ev) => ev.reason === 'DowngradeHeld' && ev.type === 'Warning'),
      10_000,
      25,
    );
    // Held before anything changed: the release still serves 3.1.0.
    expect(releaseReady(e.sim, s)).toBe(true);
    console.log(
      `[stalls] stall shown ${shownMs} ms after the change; held ${Date.parse(held.updatedAt) - Date.parse(stalled.stalled!.since)} ms after the stall began (bound 3000 ms)`,
    );
  });
});
