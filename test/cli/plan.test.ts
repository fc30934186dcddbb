// `plan` against the simulated cluster: a running Airflow release (real Postgres behind it), the
// official chart's rendered manifests as multi-document YAML, and the built CLI for exit codes.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlan, type PlanCliOptions } from '../../src/cli/commands/plan.js';
import { operationIdFor } from '../../src/core/decide.js';
import { newOperation, operationConfigMap } from '../../src/coordinator/operation.js';
import type { PlanReport } from '../../src/plan/evaluate.js';
import { startE2E, type E2E, type ReleaseSpec } from '../e2e/harness.js';
import { renderChart } from '../plan/fixtures.js';
import { freePort } from '../support/postgres.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const spec: ReleaseSpec = {
  release: 'airflow',
  namespace: 'airflow',
  version: '3.1.0',
  components: ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'],
  statefulSets: ['triggerer', 'worker'],
  replicas: { scheduler: 2 },
};

let e2e: E2E;
let dir: string;
let kubeconfig: string;

function newestMtime(path: string): number {
  return Math.max(
    0,
    ...readdirSync(path, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs),
  );
}

/** `npm test` builds first; run alone, build when dist is older than the sources the CLI runs. */
function ensureBuilt(): void {
  let builtAt = 0;
  try {
    builtAt = statSync(join(root, 'dist/src/cli/commands/plan.js')).mtimeMs;
  } catch {
    // not built yet
  }
  const sources = Math.max(
    ...['src/core', 'src/cli', 'src/plan', 'src/coordinator'].map((d) => newestMtime(join(root, d))),
  );
  if (builtAt < sources)
    spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'ignore' });
}

function cli(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'bin/airflow-downgrade-guard.js'), ...args], {
      cwd: root,
      env: { ...process.env, HOME: dir, KUBECONFIG: join(dir, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

async function plan(
  manifests: string,
  options: Partial<PlanCliOptions> = {},
): Promise<{ code: number; report: PlanReport; stderr: string }> {
  const path = join(dir, `m-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, manifests);
  let stdout = '';
  let stderr = '';
  const code = await runPlan(
    { file: path, kubeconfig, output: 'json', ...options },
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdin: async () => '' },
  );
  return { code, report: stdout ? (JSON.parse(stdout) as PlanReport) : ({} as PlanReport), stderr };
}

beforeAll(async () => {
  ensureBuilt();
  e2e = await startE2E();
  await e2e.installRelease(spec);
  dir = mkdtempSync(join(tmpdir(), 'adg-plan-cli-'));
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, e2e.sim.api.kubeconfig(), { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await e2e?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plan against the live (simulated) cluster', () => {
  it('a downgrade render: UPDATEs against the stored objects, exec pod and drain from the running release, exit 3', async () => {
    const { code, report, stderr } = await plan(
      renderChart({ version: '3.0.2', replicas: { scheduler: 2 }, hooks: true }),
    );
    expect(stderr).toBe('');
    expect(code).toBe(3);
    expect(report.source).toMatch(
      /^cluster https:\/\/127\.0\.0\.1:\d+ \(context \S+: stored objects and running pods\)$/,
    );
    const r = report.releases[0]!;
    expect(report.releases).toHaveLength(1);
    expect(r).toMatchObject({
      namespace: 'airflow',
      release: 'airflow',
      outcome: 'downgrade',
      operationId: operationIdFor('airflow', 'airflow', 'cc92b33c6709', '29ce7909c52b'),
    });
    expect(r.from).toEqual({ version: '3.1.0', revision: 'cc92b33c6709', source: 'oldObject' });
    const ops = Object.fromEntries(r.objects.map((o) => [o.name, `${o.operation} ${o.decision}`]));
    expect(ops).toEqual({
      'airflow-api-server': 'UPDATE downgrade',
      'airflow-scheduler': 'UPDATE downgrade',
      'airflow-dag-processor': 'UPDATE downgrade',
      'airflow-triggerer': 'UPDATE downgrade',
      'airflow-worker': 'UPDATE downgrade',
      'airflow-statsd': 'UPDATE pass-through',
      'airflow-pgbouncer': 'CREATE pass-through',
      // the hook Job was deleted after the install: a CREATE, compared with the running pods
      'airflow-run-airflow-migrations': 'CREATE downgrade',
      'airflow-database-cleanup': 'UPDATE downgrade',
    });
    expect(r.held).toContain('statefulset/airflow-worker (spec.updateStrategy.rollingUpdate.partition=2147483647)');
    expect(r.plan?.execPod?.name).toMatch(/^airflow-api-server-/);
    expect(r.plan?.drain.map((w) => `${w.kind}/${w.name}:${w.replicas}`)).toEqual([
      'Deployment/airflow-api-server:1',
      'Deployment/airflow-dag-processor:1',
      'Deployment/airflow-scheduler:2',
      'StatefulSet/airflow-triggerer:1',
      'StatefulSet/airflow-worker:1',
    ]);
    expect(r.plan?.outage).toEqual({ workloads: 5, pods: 6 });
    // nothing changed in the cluster
    expect(e2e.operation('airflow', 'airflow')).toBeUndefined();
    expect(
      (e2e.workload('Deployment', 'airflow', 'airflow-scheduler') as { spec: { paused?: boolean } }).spec.paused ??
        false,
    ).toBe(false);
  });

  it('a same-head change is no downgrade, exit 0; objects without a namespace take --namespace', async () => {
    const { code, report } = await plan(renderChart({ version: '3.1.7', namespace: null }), { namespace: 'airflow' });
    expect(code).toBe(0);
    expect(report.releases.map((r) => `${r.namespace}/${r.release}:${r.outcome}`)).toEqual([
      'airflow/airflow:no-downgrade',
    ]);
    expect(report.releases[0]?.objects.find((o) => o.name === 'airflow-scheduler')).toMatchObject({
      operation: 'UPDATE',
      decision: 'same-head',
    });
  });

  it('a stated state wins over the pods when given with --kubeconfig', async () => {
    const { code, report } = await plan(renderChart({ version: '3.0.2', namespace: null }), {
      namespace: 'other',
      releaseVersion: '3.0.2',
    });
    expect(code).toBe(0);
    expect(report.source).toMatch(/stated runningVersion=3\.0\.2\)$/);
    expect(report.releases[0]?.objects.find((o) => o.name === 'airflow-scheduler')).toMatchObject({
      operation: 'CREATE',
      decision: 'no-version-change',
    });
  });

  it('no namespace from -n or the manifests while the release runs elsewhere: says so, exit 4 (undetermined)', async () => {
    const { code, stderr } = await plan(renderChart({ version: '3.0.2', namespace: null }));
    expect(code).toBe(4);
    expect(stderr).toBe(
      "undetermined: neither -n nor the manifests name a namespace, so they were evaluated in namespace default (the context's), but release airflow runs in namespace airflow. Render and plan with the release's namespace: helm template -n NS ... | airflow-downgrade-guard plan -n NS -f -\n",
    );
    // The recipe that works: the release's namespace given.
    expect((await plan(renderChart({ version: '3.0.2', namespace: null }), { namespace: 'airflow' })).code).toBe(3);
    // A release of a name no namespace runs is a plain install wherever it goes.
    expect((await plan(renderChart({ version: '3.0.2', namespace: null, release: 'fresh' }))).code).toBe(0);
  });

  it('no objects at all (an empty helm template output) is an error, exit 1; objects without Airflow workloads are not', async () => {
    const empty = await plan('');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(
      /^error: \S+\.yaml holds no Kubernetes objects \(an empty `helm template` output\?\): nothing to plan\n$/,
    );
    expect((await plan('---\n# Source: chart/templates/nothing.yaml\n---\n')).code).toBe(1);
    const other = await plan('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: airflow}\n');
    expect(other).toMatchObject({ code: 0, stderr: '' });
  });

  it('with an open operation, another version is refused: exit 1 (denied)', async () => {
    const op = newOperation({
      id: 'dg-0123456789abcdef',
      namespace: 'airflow',
      release: 'airflow',
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: 'cc92b33c6709',
      toRevision: '29ce7909c52b',
      openedBy: 'admin',
      now: new Date(),
    });
    await e2e.admin.create('ConfigMap', 'airflow', { ...operationConfigMap(op) });
    try {
      const { code, report } = await plan(renderChart({ version: '3.0.3' }));
      expect(code).toBe(1);
      expect(report.releases[0]?.outcome).toBe('denied');
      expect(report.releases[0]?.objects.find((o) => o.name === 'airflow-scheduler')?.denial).toMatch(
        /is under downgrade operation dg-0123456789abcdef \(3\.1\.0 -> 3\.0\.2, phase confirm\)/,
      );
      const joining = await plan(renderChart({ version: '3.0.2' }));
      expect(joining.code).toBe(3);
      expect(joining.report.releases[0]?.objects.find((o) => o.name === 'airflow-scheduler')?.decision).toBe(
        'join-operation',
      );
    } finally {
      await e2e.admin.delete('ConfigMap', 'airflow', 'airflow-downgrade-guard-op-airflow');
    }
  });
});

describe('plan exit codes through the built CLI', () => {
  it('3 for a downgrade read from stdin, with the text plan', async () => {
    const { code, stdout, stderr } = await cli(
      ['plan', '-f', '-', '--kubeconfig', kubeconfig],
      renderChart({ version: '3.0.2', hooks: true }),
    );
    expect(stderr).toBe('');
    expect(code).toBe(3);
    expect(stdout).toMatch(/airflow\/airflow: DOWNGRADE 3\.1\.0 -> 3\.0\.2 \(schema cc92b33c6709 -> 29ce7909c52b\)/);
    expect(stdout).toContain('  run in:     a short-lived runner pod of 3.1.0, after the drain');
    expect(stdout).toContain('Result: a downgrade would be coordinated for 1 release(s) (exit 3).');
  });

  it('0 for a forward upgrade stated offline', async () => {
    const { code, stdout } = await cli(
      ['plan', '-f', '-', '--release-version', '3.0.2'],
      renderChart({ version: '3.1.0' }),
    );
    expect(code).toBe(0);
    expect(stdout).toContain('Result: no downgrade (exit 0).');
  });

  it('1 for an unreachable cluster, in one line', async () => {
    const port = await freePort();
    const unreachable = join(dir, 'unreachable');
    writeFileSync(
      unreachable,
      e2e.sim.api.kubeconfig().replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`),
    );
    const { code, stdout, stderr } = await cli(
      ['plan', '-f', '-', '--kubeconfig', unreachable],
      renderChart({ version: '3.0.2' }),
    );
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(
      new RegExp(`^error: cannot reach the Kubernetes API at https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\n$`),
    );
  });

  it('1 without any cluster configuration or stated state', async () => {
    const { code, stderr } = await cli(['plan', '-f', '-'], renderChart({ version: '3.0.2' }));
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^error: cannot load the Kubernetes configuration from KUBECONFIG, ~\/\.kube\/config or the in-cluster service account: /,
    );
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('2 for bad flags', async () => {
    expect((await cli(['plan', '-f', '-', '--output', 'yaml'])).code).toBe(2);
    expect((await cli(['plan', '-f', '-', '--release-version', 'latest'])).code).toBe(2);
    expect((await cli(['plan'])).code).toBe(2);
  });
});
