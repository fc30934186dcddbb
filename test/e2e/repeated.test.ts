// Issue 17 item 1 in CI: a downgrade, the upgrade back, and the same downgrade again, with two
// guard replicas answering admissions in any order.
import { afterEach, describe, it } from 'vitest';
import type { InstalledE2E } from './install-harness.js';
import { runRepeatedDowngrades } from './repeated-downgrade.js';

let e2e: InstalledE2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

describe('repeated downgrade, two guard replicas', () => {
  it('3.1.0 -> 3.0.2 -> 3.1.0 -> 3.0.2: the second downgrade is its own operation and runs every step', async () => {
    const run = await runRepeatedDowngrades(2, (e) => (e2e = e));
    console.log(`[repeated] operations: ${run.ids.join(', ')}`);
  }, 240_000);
});
