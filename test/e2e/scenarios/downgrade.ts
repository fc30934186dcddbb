// The downgrade 3.1.0 -> 3.0.2 as each deploy tool applies it (Helm with the migration Job as a
// post- or pre-upgrade hook, `kubectl set image` on one Deployment), with the contract of every
// downgrade (target version and original replicas, alembic head, zero violations, step sequence).
// Run on the simulated cluster (test/e2e/downgrade.test.ts) and the real control plane
// (test/cluster/downgrade.test.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { OperationState } from '../../../src/coordinator/operation.js';
import {
  FULL_SEQUENCE,
  eventsIncluding,
  execDurations,
  expectDowngraded,
  expectNoViolations,
  headOf,
  recordPods,
  releaseReady,
  setImage,
  stepSequence,
  upgradeRelease,
  waitFor,
  type PodEvent,
  type ReleaseSpec,
  type UpgradeResult,
} from '../harness.js';
import { startedPerTest, type StartE2E } from './start.js';

const s: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 } };

export function downgradeScenarios(startOn: StartE2E): void {
  describe('downgrade 3.1.0 -> 3.0.2 end to end', () => {
    const start = startedPerTest(startOn);

    it('Helm upgrade with the migration Job as a post-upgrade hook (Deployments first)', async () => {
      const e2e = await start();
      await e2e.installRelease(s);
      const guard = await e2e.startGuard();
      // Admission keeps its priority; the coordinator's thread (the main one) runs 5 nice steps below it.
      const nices = threadNices(guard.process.pid!);
      const admission = nices.get('admission')!;
      expect(admission).toBeLessThan(15); // the guard starts at this test's priority; room for 5 steps
      expect(nices.get('MainThread')).toBe(admission + 5);
      expect(await e2e.revision()).toBe(headOf('3.1.0'));
      const pods = recordPods(e2e, s.namespace);
      const upgrade = await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade' });
      const op = await expectDowngraded(e2e, s, '3.0.2');
      const readyAt = Date.now();
      pods.stop();
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(op.execPod).toMatchObject({ component: 'api-server', runner: false });
      await eventsIncluding(e2e, s.namespace, [
        'DowngradeOpened',
        'DowngradeRunning',
        'DowngradeSucceeded',
        'SchemaVerified',
        'Draining',
        'Drained',
        'Released',
      ]);
      // Every call of the guard was allowed (on the real control plane: by its authorizer, with the
      // RBAC of the install manifests).
      expect(guard.logs.filter((l) => /forbidden/i.test(l))).toEqual([]);
      const t = timeline(op, upgrade, pods.events, execDurations(guard), readyAt);
      console.log(formatTimeline(t));
      expect(t.overheadMs).toBeLessThan(t.totalMs);
    });

    it('Helm upgrade with the migration Job as a pre-upgrade hook (Job first)', async () => {
      const e2e = await start();
      await e2e.installRelease(s);
      await e2e.startGuard();
      const upgrade = await upgradeRelease(e2e, s, '3.0.2', { hook: 'pre-upgrade' });
      // Helm waits on the held Job until its --timeout (5 min by default): the operation must release it well before.
      console.log(
        `pre-upgrade hook Job: created -> complete in ${upgrade.hookJobMs} ms (Helm's default timeout: 300000 ms)`,
      );
      expect(upgrade.hookJobMs).toBeLessThan(30_000);
      // The Deployments arrive after the operation is done, drained at 0: each update is admitted held at
      // 0 replicas, whatever count Helm sends, and the coordinator restores it right away.
      for (const a of upgrade.applied) {
        expect(a.wasDrained, a.name).toBe(true);
        expect(a.admittedReplicas, a.name).toBe(0);
      }
      const lastUpdate = Math.max(...upgrade.applied.map((a) => a.admittedAt));
      await waitFor(
        'late workloads restored',
        () =>
          upgrade.applied.every((a) => {
            const d = e2e.workload(a.kind, s.namespace, a.name) as { spec: { paused?: boolean; replicas?: number } };
            return !d.spec.paused && (d.spec.replicas ?? 0) > 0;
          }),
        30_000,
        10,
      );
      console.log(
        `late workloads (updated after the operation was done) restored ${Date.now() - lastUpdate} ms after the last update`,
      );
      const op = await expectDowngraded(e2e, s, '3.0.2');
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(op.openedBy).toBe('Job/airflow-run-airflow-migrations');
    });

    it('kubectl set image on one Deployment: the others stay drained until their own update', async () => {
      const e2e = await start();
      await e2e.installRelease(s);
      await e2e.startGuard();
      await setImage(e2e, 'Deployment', 'airflow', 'airflow-api-server', '3.0.2');
      const op = await waitFor(
        'operation done',
        () => e2e.operation('airflow', 'airflow')?.phase === 'done' && e2e.operation('airflow', 'airflow'),
        60_000,
        100,
      );
      expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
      expect(await e2e.revision()).toBe(headOf('3.0.2'));
      const scheduler = e2e.workload('Deployment', 'airflow', 'airflow-scheduler') as { spec: { replicas: number } };
      expect(scheduler.spec.replicas).toBe(0);
      await expectNoViolations(e2e);
      for (const c of ['scheduler', 'dag-processor', 'triggerer', 'worker'])
        await setImage(e2e, 'Deployment', 'airflow', `airflow-${c}`, '3.0.2');
      await waitFor(
        'release running 3.0.2',
        () => releaseReady(e2e.sim, { ...s, version: '3.0.2', cronJobs: false }),
        60_000,
        100,
      );
      await expectNoViolations(e2e);
    });
  });
}

/** Nice value per thread name of a Linux process (first thread of each name). */
function threadNices(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // Field 19 of stat; the command name before it may hold spaces and parentheses.
      if (!out.has(name)) out.set(name, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // a thread that ended while we looked
    }
  }
  return out;
}

interface Timeline {
  totalMs: number;
  inherentMs: number;
  overheadMs: number;
  rows: Array<{ phase: string; ms: number; inherent: number; overhead: number; note: string }>;
}

/**
 * Admission of the first held object to every pod of the target version Ready, split into the work a
 * downgrade needs anyway (the exec, old pods terminating, new pods starting) and what the
 * coordinator adds (opening, reading the database, choosing the pod, patches, state writes).
 */
function timeline(
  op: OperationState,
  upgrade: UpgradeResult,
  pods: PodEvent[],
  execs: number[],
  readyAt: number,
): Timeline {
  const at = (step: string): number => Date.parse(op.steps.find((s) => s.step === step && s.outcome !== 'waiting')!.at);
  const admitted = Math.min(...upgrade.applied.map((a) => a.admittedAt));
  const exec = execs.reduce((a, b) => a + b, 0);
  const oldGone = Math.max(...pods.filter((p) => p.type === 'DELETED' && p.image.endsWith(':3.1.0')).map((p) => p.at));
  const firstOldDeleting = Math.min(
    ...pods.filter((p) => p.type === 'MODIFIED' && p.image.endsWith(':3.1.0') && p.at >= at('verify')).map((p) => p.at),
  );
  const termination = oldGone - firstOldDeleting;
  const rows = [
    { phase: 'admission -> open', ms: at('open') - admitted, inherent: 0, note: 'watch event, ConfigMap create' },
    { phase: 'confirm', ms: at('confirm') - at('open'), inherent: 0, note: 'Lease, alembic_version read' },
    { phase: 'downgrade', ms: at('downgrade') - at('confirm'), inherent: exec, note: `exec ${exec} ms` },
    { phase: 'verify', ms: at('verify') - at('downgrade'), inherent: 0, note: 'alembic_version read' },
    {
      phase: 'drain',
      ms: at('drain') - at('verify'),
      inherent: Math.max(0, Math.min(termination, at('drain') - at('verify'))),
      note: `old pods terminating ${termination} ms`,
    },
    {
      phase: 'release',
      ms: at('release') - at('drain'),
      inherent: 0,
      note: 'unpause/restore patches (new pods start meanwhile)',
    },
    { phase: 'start', ms: readyAt - at('release'), inherent: 0, note: 'until the last new pod is Ready' },
  ].map((r) => ({ ...r, overhead: r.ms - r.inherent }));
  // Pods start in parallel: the inherent start time is the slowest pod's creation -> Ready.
  const started = new Map<string, { added: number; ready?: number }>();
  for (const p of pods) {
    if (!p.image.endsWith(':3.0.2') || p.at < at('drain')) continue;
    const entry = started.get(p.name) ?? { added: p.at };
    if (p.ready && entry.ready === undefined) entry.ready = p.at;
    started.set(p.name, entry);
  }
  const podStart = Math.max(0, ...[...started.values()].map((e) => (e.ready ?? e.added) - e.added));
  const startRow = rows[rows.length - 1]!;
  const releaseRow = rows[rows.length - 2]!;
  // Attribute the pod start to the release+start span it overlaps, start row first.
  const span = startRow.ms + releaseRow.ms;
  const inherentStart = Math.min(podStart, span);
  startRow.inherent = Math.min(inherentStart, startRow.ms);
  releaseRow.inherent = inherentStart - startRow.inherent;
  for (const r of [startRow, releaseRow]) r.overhead = r.ms - r.inherent;
  rows.push({
    phase: '(pod start)',
    ms: podStart,
    inherent: podStart,
    overhead: 0,
    note: 'slowest new pod, created -> Ready',
  });
  const totalMs = readyAt - admitted;
  const inherentMs = rows.filter((r) => !r.phase.startsWith('(')).reduce((a, r) => a + r.inherent, 0);
  return { totalMs, inherentMs, overheadMs: totalMs - inherentMs, rows };
}

function formatTimeline(t: Timeline): string {
  const lines = t.rows.map(
    (r) =>
      `  ${r.phase.padEnd(20)} ${String(r.ms).padStart(6)} ms  inherent ${String(r.inherent).padStart(6)}  overhead ${String(r.overhead).padStart(6)}  (${r.note})`,
  );
  return [
    `3.1.0 -> 3.0.2 (post-upgrade): admission -> all 3.0.2 pods Ready in ${t.totalMs} ms; inherent ${t.inherentMs} ms, coordinator overhead ${t.overheadMs} ms`,
    ...lines,
  ].join('\n');
}
