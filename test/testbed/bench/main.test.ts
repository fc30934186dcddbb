// `npm run bench` leaves no work directory behind, however it ends (it once left adg-bench-* dirs).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { registryAvailable } from '../../../testbed/oci-registry.js';

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

// The registry rows need Debian's docker-registry (as test/registry does).
it.runIf(registryAvailable())(
  '--only resolution reports each resolution path and leaves nothing behind',
  () => {
    const tmp = mkdtempSync(join(tmpdir(), 'adg-bench-test-'));
    try {
      const run = spawnSync(process.execPath, [MAIN, '--only', 'resolution', '--quick'], {
        env: { ...process.env, TMPDIR: tmp },
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain('## 6. Version resolution latency');
      for (const path of [
        'admission, tag names the version',
        'admission, cache hit',
        'admission, cache miss: held',
        'coordinator, registry miss, anonymous',
        'coordinator, registry miss, htpasswd, a pull secret in the pod spec',
        'coordinator, probe pod',
      ])
        expect(run.stdout).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.* (µs|ms) `, 'm'));
      expect(run.stdout).not.toContain('not measured');
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
  150_000,
);
