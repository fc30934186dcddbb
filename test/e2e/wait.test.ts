// `wait` against the real guard: a pipeline that runs it after its deploy tool returned gets exit 0
// only once the downgrade is done and the release runs the target version, and 3 with the reason
// when the operation is held.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnOwned, stopOwned } from '../support/processes.js';
import {
  ROOT,
  failNextDowngrade,
  podImage,
  releaseReady,
  releaseSpec,
  startE2E,
  upgradeRelease,
  waitFor,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

let e2e: E2E | undefined;
let dir: string | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

interface WaitRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** What the test saw the moment `wait` exited. */
  atExit: { phase?: string; ready: boolean };
}

/** Starts `wait` as a pipeline would; `done` records the cluster's state the moment it exits. */
function startWait(
  e: E2E,
  s: ReleaseSpec,
  target: string,
  args: string[] = [],
): { stderr: () => string; done: Promise<WaitRun> } {
  dir ??= mkdtempSync(path.join(os.tmpdir(), 'adg-wait-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, e.adminKubeconfig, { mode: 0o600 });
  const child = spawnOwned(
    process.execPath,
    [
      path.join(ROOT, 'bin/airflow-downgrade-guard.js'),
      'wait',
      '--release',
      `${s.namespace}/${s.release}`,
      '--kubeconfig',
      kubeconfig,
      '--interval',
      '100ms',
      ...args,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; atExit: WaitRun['atExit'] }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) =>
      resolve({
        code,
        atExit: {
          phase: e.operation(s.namespace, s.release)?.phase,
          ready: releaseReady(e.sim, { ...s, version: target }),
        },
      }),
    );
  });
  // 'close' comes after the pipes drained.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const done = Promise.all([exited, closed])
    .then(([{ code, atExit }]) => ({ code, stdout, stderr, atExit }))
    .finally(() => stopOwned(child, 'SIGKILL'));
  return { stderr: () => stderr, done };
}

function runWait(e: E2E, s: ReleaseSpec, target: string, args: string[] = []): Promise<WaitRun> {
  return startWait(e, s, target, args).done;
}

describe('wait after a downgrade was applied', () => {
  it('exits 0 only once the operation is done and every workload runs the target version', async () => {
    // The old pods stay Terminating until the test lets them go: the drain cannot finish before
    // the test has seen `wait` report the open operation.
    let oldPodsStuck = true;
    e2e = await startE2E({ stuckTerminating: (pod) => oldPodsStuck && podImage(pod).endsWith(':3.1.0') });
    const s = releaseSpec('waitok');
    await e2e.installRelease(s);
    await e2e.startGuard();
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const run = startWait(e2e, s, '3.0.2', ['--timeout', '60s']);
    await waitFor(
      'wait reporting the drain',
      () => /waiting for waitok\/waitok: operation dg-[0-9a-f]+ \(3\.1\.0 -> 3\.0\.2\) is at drain/.test(run.stderr()),
      30_000,
    );
    expect(e2e.operation(s.namespace, s.release)?.phase).toBe('drain');
    oldPodsStuck = false;
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.atExit).toEqual({ phase: 'done', ready: true });
    expect(result.stdout).toMatch(
      /^release waitok\/waitok: 7 workloads rolled out, none held; last operation dg-[0-9a-f]+ \(3\.1\.0 -> 3\.0\.2\) done \(after \d+s\)\n$/,
    );
  });

  it('exits 3 with the reason when the downgrade fails and the operation is held', async () => {
    e2e = await startE2E();
    const s = releaseSpec('waitheld');
    await e2e.installRelease(s);
    await e2e.startGuard();
    failNextDowngrade(e2e);
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const run = await runWait(e2e, s, '3.0.2', ['--timeout', '60s']);
    expect(run.code, run.stderr).toBe(3);
    expect(run.atExit.phase).toBe('held');
    expect(run.stdout).toMatch(
      /^waitheld\/waitheld is held: operation dg-[0-9a-f]+ \(3\.1\.0 -> 3\.0\.2\) is held at downgrade: downgrade failed in pod .*deadlock detected/,
    );
  });

  it('exits 124 when the release is not done in time', async () => {
    e2e = await startE2E();
    const s = releaseSpec('waitslow');
    await e2e.installRelease(s);
    await e2e.startGuard();
    // The downgrade command hangs (until the guard's exec timeout, far beyond the wait's).
    e2e.sim.runtime.faults.add({ command: 'db downgrade', fault: { kind: 'exec-hang' }, times: 1 });
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const run = await runWait(e2e, s, '3.0.2', ['--timeout', '1s']);
    expect(run.code, run.stderr).toBe(124);
    expect(run.stdout).toMatch(
      /^waitslow\/waitslow is not done after 1s: operation dg-[0-9a-f]+ \(3\.1\.0 -> 3\.0\.2\) is at /,
    );
  });
});
