// Issue 17's safety scenarios driven by real Helm 3.17.2 and 4.1.4 (not the imitation): the fixture
// chart with the upstream hook layout (migration Job as a post-upgrade hook), the guard installed from
// deploy/base with its webhook Service. Each scenario starts its own cluster so its timing (a slow
// exec, a failing one) stays its own.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, onTestFailed } from 'vitest';
import type { OperationState } from '../../src/coordinator/operation.js';
import { writeAirflowFixtureChart } from '../support/airflow-chart.js';
import { helmFor, type Helm, type HelmMajor } from '../support/helm.js';
import { spawnOwned, stopOwned } from '../support/processes.js';
import { removeKubectlDirs } from '../testbed/sim/support.js';
import { describeRelease, eventsOf, FULL_SEQUENCE, releaseReady, ROOT, stepSequence, waitFor } from './harness.js';
import { kustomize, startInstalledE2E, type InstalledE2E } from './install-harness.js';
import {
  expectSettledAt,
  fixtureRelease,
  HELM_FROM,
  HELM_TO,
  helmDowngradeThenRollback,
  helmInstallFixture,
} from './scenarios/helm.js';

const FROM = HELM_FROM;
const TO = HELM_TO;
const spec = fixtureRelease;
const TERMINAL = ['done', 'held', 'aborted', 'cancelled', 'returned'];

/** Helm version × scenario × outcome × time, printed at the end (the report's table). */
const table: string[] = [];
afterAll(() => {
  if (table.length) console.log(['helm | scenario | outcome | ms', ...table].join('\n'));
});

interface Setup {
  e2e: InstalledE2E;
  helm: Helm;
  chart: string;
  dir: string;
}
let current: Setup | undefined;
afterEach(async () => {
  await current?.e2e.stop();
  current?.helm.cleanup();
  if (current) rmSync(current.dir, { recursive: true, force: true });
  current = undefined;
  removeKubectlDirs();
});

/** A cluster with `guards` guard replicas and the fixture release installed by Helm at FROM. */
async function setup(major: HelmMajor, options: { guards?: number; stepDurationMs?: number } = {}): Promise<Setup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `adg-helm${major}-safety-`));
  const chart = writeAirflowFixtureChart(path.join(dir, 'airflow'));
  const e2e = await startInstalledE2E(kustomize('base'), { stepDurationMs: options.stepDurationMs });
  const helm = helmFor(major, e2e.sim.api.kubeconfig());
  current = { e2e, helm, chart, dir };
  onTestFailed(() => console.log(`[helm-safety] state at the failure:\n${describeRelease(e2e, 'airflow', 'airflow')}`));
  const names = ['a', 'b'].slice(0, options.guards ?? 1);
  await Promise.all(names.map((n) => e2e.startGuard(`airflow-downgrade-guard-${n}`)));
  await helmInstallFixture(e2e, helm, chart);
  return current;
}

const upgradeArgs = (s: Setup, version: string, extra: string[] = []) => [
  'upgrade',
  'airflow',
  s.chart,
  '-n',
  'airflow',
  '--reuse-values',
  '--set',
  `airflowVersion=${version}`,
  '--timeout',
  '5m',
  ...extra,
];

const operation = (s: Setup) => s.e2e.operation('airflow', 'airflow');

/** The operation with an id not in `seen` once it has ended. */
function ended(s: Setup, seen: string[], what: string): Promise<OperationState> {
  return waitFor(
    what,
    () => {
      const op = operation(s);
      return op && !seen.includes(op.id) && TERMINAL.includes(op.phase) && op;
    },
    90_000,
    100,
  );
}

function logged(s: Setup, text: string): boolean {
  return s.e2e.guards.some((g) => g.logs.some((l) => l.includes(text)));
}

const warnings = (s: Setup) =>
  eventsOf(s.e2e, 'airflow')
    .filter((e) => e.type === 'Warning')
    .map((e) => `${e.reason}: ${e.message}`);

for (const major of [3, 4] as const) {
  describe(`Helm ${major}: issue 17 safety scenarios with real Helm`, () => {
    it(
      `(a) ${FROM} -> ${TO} -> ${FROM} -> ${TO} on one release, two guard replicas: each downgrade its own operation`,
      { timeout: 600_000 },
      async () => {
        const started = Date.now();
        const s = await setup(major, { guards: 2 });
        const ids: string[] = [];
        for (let round = 1; round <= 2; round++) {
          s.e2e.sim.runtime.violations.clear();
          const result = await s.helm.run(upgradeArgs(s, TO, ['--wait']));
          expect(result.code, result.stderr).toBe(0);
          const op = await ended(s, ids, `downgrade ${round} ended`);
          expect(op.phase, op.heldReason ?? '').toBe('done');
          expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
          if (round > 1) expect(op.admittedAs).toMatch(/^dg-/);
          await expectSettledAt(s.e2e, TO);
          ids.push(op.id);
          if (round === 1) {
            await s.helm.ok(upgradeArgs(s, FROM));
            await waitFor(`back on ${FROM}`, () => releaseReady(s.e2e.sim, spec(FROM)), 90_000, 100);
          }
        }
        expect(new Set(ids).size, ids.join(', ')).toBe(2);
        table.push(
          `${major} | (a) repeated downgrade, 2 replicas | 2 operations ${ids.join(', ')}, both done, 0 violations | ${Date.now() - started}`,
        );
      },
    );

    // Found with real Helm 3 (not the imitation, whose upgrade in returns.test.ts creates no hook Job):
    // `helm upgrade` without --wait creates the 3.0.2 post-upgrade migration Job at once, the guard
    // holds it (suspend), and `helm rollback` never touches hooks, so that Job stays at 3.0.2. The
    // return is still a return (a held Job cannot be changed back): forward, restore, and the Job,
    // which never ran, is deleted (it would run 3.0.2 on the 3.1.0 schema, and its hold would open a
    // new downgrade). The upgrade itself times out on the held Job.
    it(
      '(b) `helm rollback` to the from-version while the downgrade exec runs (post-upgrade hook Job created)',
      { timeout: 600_000 },
      async () => {
        const started = Date.now();
        const s = await setup(major, { stepDurationMs: 3000 });
        const upgrade = s.helm.run(upgradeArgs(s, TO).map((a) => (a === '5m' ? '20s' : a)));
        await waitFor('downgrade exec running', () => logged(s, 'operation downgrade start'), 60_000, 20);
        await s.helm.ok(['rollback', 'airflow', '1', '-n', 'airflow', '--wait', '--timeout', '2m']);
        await upgrade;
        const op = await ended(s, [], 'operation ended');
        expect(op.phase, JSON.stringify(op)).toBe('returned');
        expect(warnings(s).some((w) => w.startsWith('DowngradeReturned'))).toBe(true);
        await expectSettledAt(s.e2e, FROM);
        await waitFor(
          'the held 3.0.2 hook Job deleted',
          () => !s.e2e.workload('Job', 'airflow', 'airflow-run-airflow-migrations'),
          30_000,
          100,
        );
        expect(warnings(s).filter((w) => w.startsWith('HeldJobDeleted: '))).toHaveLength(1);
        table.push(`${major} | (b) rollback during exec | ${op.phase} | ${Date.now() - started}`);
      },
    );

    // The same body on the real control plane: test/cluster/helm.test.ts.
    it('(b) `helm rollback` to the from-version after the downgrade is done', { timeout: 600_000 }, async () => {
      const started = Date.now();
      const s = await setup(major);
      const { outcome } = await helmDowngradeThenRollback(s.e2e, s.helm, s.chart);
      table.push(`${major} | (b) rollback after done | ${outcome} | ${Date.now() - started}`);
    });

    it(
      `(c) \`helm upgrade ${major === 3 ? '--atomic' : '--rollback-on-failure'} --timeout 20s\` of a downgrade whose exec fails`,
      { timeout: 600_000 },
      async () => {
        const started = Date.now();
        const s = await setup(major);
        s.e2e.sim.runtime.faults.add({
          command: 'db downgrade',
          fault: { kind: 'exec-fail', exitCode: 1, message: 'sqlalchemy.exc.OperationalError: deadlock detected' },
          times: 1,
        });
        const result = await s.helm.run([
          'upgrade',
          'airflow',
          s.chart,
          '-n',
          'airflow',
          '--reuse-values',
          '--set',
          `airflowVersion=${TO}`,
          major === 3 ? '--atomic' : '--rollback-on-failure',
          '--timeout',
          '20s',
        ]);
        const op = operation(s);
        const history = await s.helm.history('airflow', 'airflow');
        // Helm: the held 3.0.2 post-upgrade Job never completes, the hook times out, and the atomic
        // rollback deploys revision 1 again. The exec failed, so the schema never moved.
        expect(result.code).not.toBe(0);
        expect(history.map((h) => h.status)).toEqual(['superseded', 'failed', 'deployed']);
        expect(op?.heldReason).toMatch(/deadlock detected.*schema is unchanged at 3\.1\.0/);
        expect(warnings(s).some((w) => w.startsWith('DowngradeHeld: ') && w.includes('deadlock detected'))).toBe(true);
        // The rollback changed the release back while held; the upgrade's 3.0.2 hook Job stays held
        // (no rollback touches hooks). The schema never moved: the operation ends cancelled, nothing
        // is left at 0, paused or marked, and the held Job, which never ran, is deleted.
        const after = await ended(s, [], 'operation ended');
        expect(after.phase, JSON.stringify(after)).toBe('cancelled');
        await expectSettledAt(s.e2e, FROM);
        await waitFor(
          'the held 3.0.2 hook Job deleted',
          () => !s.e2e.workload('Job', 'airflow', 'airflow-run-airflow-migrations'),
          30_000,
          100,
        );
        expect(warnings(s).filter((w) => w.startsWith('HeldJobDeleted: '))).toHaveLength(1);
        // The same downgrade again (its holds carry the id the cancelled one was admitted under): a
        // new operation, its hook Job held with it and run, not taken for the one left behind.
        s.e2e.sim.runtime.violations.clear();
        await s.helm.ok(upgradeArgs(s, TO, ['--wait']));
        const again = await ended(s, [after.id], 'the downgrade again ended');
        expect(again.phase, again.heldReason ?? '').toBe('done');
        await expectSettledAt(s.e2e, TO);
        expect(warnings(s).filter((w) => w.startsWith('HeldJobDeleted: '))).toHaveLength(1);
        table.push(
          `${major} | (c) atomic, exec fails | helm exit ${result.code}, history ${history.map((h) => `${h.revision}:${h.status}`).join(' ')}, op ${op?.phase} then ${after.phase}; guard annotations left: none; held hook Job deleted; the downgrade again: ${again.phase} | ${Date.now() - started}`,
        );
      },
    );

    it(
      '`airflow-downgrade-guard wait --release airflow/airflow` after `helm upgrade --wait` of a downgrade exits 0 only once it is done',
      { timeout: 600_000 },
      async () => {
        const started = Date.now();
        const s = await setup(major, { stepDurationMs: 2000 });
        await s.helm.ok(upgradeArgs(s, TO, ['--wait']));
        const helmReturned = operation(s)?.phase;
        const kubeconfig = path.join(s.dir, 'wait-kubeconfig');
        writeFileSync(kubeconfig, s.e2e.sim.api.kubeconfig(), { mode: 0o600 });
        const child = spawnOwned(
          process.execPath,
          [
            path.join(ROOT, 'bin/airflow-downgrade-guard.js'),
            'wait',
            '--release',
            'airflow/airflow',
            '--kubeconfig',
            kubeconfig,
            '--interval',
            '100ms',
            '--timeout',
            '2m',
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let stderr = '';
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
        const atExit = await new Promise<{ code: number | null; phase?: string; ready: boolean }>((resolve) =>
          child.once('exit', (code) =>
            resolve({ code, phase: operation(s)?.phase, ready: releaseReady(s.e2e.sim, spec(TO)) }),
          ),
        ).finally(() => stopOwned(child, 'SIGKILL'));
        expect(atExit, stderr).toEqual({ code: 0, phase: 'done', ready: true });
        await expectSettledAt(s.e2e, TO);
        table.push(
          `${major} | wait after upgrade --wait | helm returned at phase ${helmReturned}; wait exit 0 at done, all Ready | ${Date.now() - started}`,
        );
      },
    );
  });
}
