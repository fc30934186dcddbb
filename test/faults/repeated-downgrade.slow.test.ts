// Issue 17 item 1 in the slow suite: ten downgrades of one release, each followed by the upgrade
// back, with two guard replicas.
import { afterEach, describe, it } from 'vitest';
import type { InstalledE2E } from '../e2e/install-harness.js';
import { runRepeatedDowngrades } from '../e2e/repeated-downgrade.js';

let e2e: InstalledE2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

describe('repeated downgrade x10, two guard replicas', () => {
  it('every one of ten downgrades is its own operation, runs every step, with zero violations', async () => {
    const run = await runRepeatedDowngrades(10, (e) => (e2e = e));
    console.log(`[repeated x10] operations: ${run.ids.join(', ')}`);
  }, 1_200_000);
});
