import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeRunScope, leftoverProcesses, openRunScope, RUN_ENV, type RunScope } from './leftovers.js';

// openRunScope changes this worker's TMPDIR and run id: put them back for the other tests.
const saved = { tmp: process.env.TMPDIR, run: process.env[RUN_ENV], cache: process.env.NODE_COMPILE_CACHE };
afterEach(() => {
  process.env.TMPDIR = saved.tmp;
  process.env[RUN_ENV] = saved.run;
  process.env.NODE_COMPILE_CACHE = saved.cache;
});

function sleeper(scope: RunScope) {
  const child = spawn('sleep', ['60'], { env: { ...process.env, [RUN_ENV]: scope.id }, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, exited };
}

describe('the run scope', () => {
  it('passes when the run left nothing', async () => {
    const scope = openRunScope();
    expect(process.env.TMPDIR).toBe(scope.tmpDir);
    await expect(closeRunScope(scope, 0)).resolves.toBeUndefined();
    expect(existsSync(scope.tmpDir)).toBe(false);
  });

  it('names every file and process left behind, then removes and kills them', async () => {
    const scope = openRunScope();
    mkdirSync(join(scope.tmpDir, 'adg-e2e-x'));
    writeFileSync(join(scope.tmpDir, 'adg-e2e-x', 'tls.key'), 'key');
    const { child, exited } = sleeper(scope);
    await new Promise((resolve) => child.once('spawn', resolve));
    expect(leftoverProcesses(scope).map((p) => p.pid)).toContain(child.pid);

    const failure = closeRunScope(scope, 0);
    await expect(failure).rejects.toThrow(/left 1 process\(es\) and 1 file\(s\) behind/);
    await expect(failure).rejects.toThrow(new RegExp(`process ${child.pid} still running \\(killed now\\): sleep 60`));
    await expect(failure).rejects.toThrow(/file left in TMPDIR \(removed now\): adg-e2e-x/);
    await exited;
    expect(child.signalCode).toBe('SIGKILL');
    expect(existsSync(scope.tmpDir)).toBe(false);
  });

  it('waits for processes that are still ending', async () => {
    const scope = openRunScope();
    const { child, exited } = sleeper(scope);
    await new Promise((resolve) => child.once('spawn', resolve));
    setTimeout(() => child.kill('SIGTERM'), 300);
    await expect(closeRunScope(scope, 10_000)).resolves.toBeUndefined();
    await exited;
  });
});
