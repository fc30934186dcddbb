// `npm run bench` leaves no work directory behind, however it ends (it once left adg-bench-* dirs).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../../../dist-testbed/testbed/bench/main.js');

it('removes its work directory when a run fails after making it', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'adg-bench-test-'));
  try {
    // A bad --cluster-nice is found after the work directory exists, before any section runs.
    const run = spawnSync(process.execPath, [MAIN, '--only', 'coordinator', '--cluster-nice', '99'], {
      env: { ...process.env, TMPDIR: tmp },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.stderr).toMatch(/work dir .*adg-bench-/);
    expect(run.stderr).toContain("--cluster-nice must be an integer 0-19, not '99'");
    expect(run.status).toBe(1);
    expect(readdirSync(tmp)).toEqual([]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
