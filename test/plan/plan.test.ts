// `plan` offline: rendered multi-document manifests against a stated release state, in-process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { runPlan, type PlanCliOptions } from '../../src/cli/commands/plan.js';
import { DEFAULT_CONFIG, parseGuardConfig } from '../../src/core/config.js';
import { operationIdFor } from '../../src/core/decide.js';
import { evaluateManifests } from '../../src/plan/evaluate.js';
import { formatPlanText } from '../../src/plan/format.js';
import { ManifestError, parseManifests } from '../../src/plan/manifests.js';
import { statedSource } from '../../src/plan/sources.js';
import { renderChart } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'adg-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function plan(
  options: Partial<PlanCliOptions> & { file: string },
  stdin = '',
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runPlan(
    { output: 'text', ...options },
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdin: async () => stdin },
  );
  return { code, stdout, stderr };
}

describe('parseManifests', () => {
  it('reads multi-document YAML, skips empty documents and flattens Lists', () => {
    const text = `---\n# comment only\n---\napiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\n{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c"}}\n`;
    const objects = parseManifests(text, 'x.yaml');
    expect(objects.map((o) => [o.document, (o.object.metadata as { name: string }).name])).toEqual([
      [2, 'a'],
      [2, 'b'],
      [3, 'c'],
    ]);
  });

  it('names the document and line of bad YAML, and rejects documents that are not objects', () => {
    expect(() => parseManifests('apiVersion: v1\nkind: ConfigMap\n---\nmetadata: {name: [x\n', 'bad.yaml')).toThrow(
      /^bad\.yaml: document 2 is not valid YAML: .* at line 5, column 1$/,
    );
    expect(() => parseManifests('- a\n- b\n', 'list.yaml')).toThrow(ManifestError);
    expect(() => parseManifests('name: x\n', 'x.yaml')).toThrow(/document 1 has no apiVersion\/kind/);
  });
});

describe('evaluateManifests with a stated release state', () => {
  it('plans the downgrade of a whole chart render: every Airflow workload held, one operation, drain from the manifests', async () => {
    const manifests = parseManifests(
      renderChart({ version: '3.0.2', replicas: { scheduler: 2, worker: 3 }, hooks: true }),
      'chart.yaml',
    );
    const report = await evaluateManifests(manifests, statedSource({ runningVersion: '3.1.0' }), {
      config: DEFAULT_CONFIG,
      namespace: 'default',
      user: 'ci',
    });
    expect(report.releases).toHaveLength(1);
    const r = report.releases[0]!;
    expect(r).toMatchObject({
      namespace: 'airflow',
      release: 'airflow',
      outcome: 'downgrade',
      operationId: operationIdFor('airflow', 'airflow', 'cc92b33c6709', '29ce7909c52b'),
      from: { version: '3.1.0', revision: 'cc92b33c6709', source: 'runningVersion' },
      to: { version: '3.0.2', revision: '29ce7909c52b' },
    });
    expect(r.plan?.argv).toEqual(['airflow', 'db', 'downgrade', '--to-revision', '29ce7909c52b', '--yes']);
    expect(r.plan?.drain.map((w) => `${w.name}:${w.replicas}`)).toEqual([
      'airflow-api-server:1',
      'airflow-scheduler:2',
      'airflow-dag-processor:1',
      'airflow-triggerer:1',
      'airflow-worker:3',
    ]);
    expect(r.plan?.outage).toEqual({ workloads: 5, pods: 8 });
    expect(r.held).toEqual([
      'deployment/airflow-api-server (spec.paused=true)',
      'deployment/airflow-scheduler (spec.paused=true)',
      'deployment/airflow-dag-processor (spec.paused=true)',
      // created StatefulSets are held at zero replicas (a partition does not hold a first rollout)
      'statefulset/airflow-triggerer (spec.replicas=0)',
      'statefulset/airflow-worker (spec.replicas=0)',
      'job/airflow-run-airflow-migrations (spec.suspend=true)',
      'cronjob/airflow-database-cleanup (spec.suspend=true)',
    ]);
    expect(r.objects.map((o) => `${o.operation} ${o.name} ${o.decision}`)).toContain(
      'CREATE airflow-statsd pass-through',
    );
    expect(r.objects.find((o) => o.name === 'airflow-pgbouncer')?.decision).toBe('pass-through');
    expect(r.warnings.some((w) => w.startsWith('Estimated outage: 5 workloads (8 pods)'))).toBe(true);
    expect(report.skipped.map((s) => s.object)).toEqual([
      'ServiceAccount airflow-scheduler',
      'Secret airflow-metadata',
      'ConfigMap airflow-config',
      'Service airflow-api-server',
    ]);
  });

  it('describes the order the configuration names (guard.order): downgrade-first runs the downgrade in a serving pod', async () => {
    const manifests = parseManifests(renderChart({ version: '3.0.2', hooks: true }), 'chart.yaml');
    const report = await evaluateManifests(manifests, statedSource({ runningVersion: '3.1.0' }), {
      config: parseGuardConfig({ order: 'downgrade-first' }),
      namespace: 'default',
      user: 'ci',
    });
    expect(report.releases[0]?.plan?.order).toBe('downgrade-first');
    const text = formatPlanText(report);
    expect(text).toContain('  order:      downgrade-first');
    expect(text).toContain(
      '  run in:     a running 3.1.0 pod (api-server or webserver first, then scheduler) — none known',
    );
    expect(text).toContain('3.1.0 serves during the downgrade');
    expect(
      report.releases[0]?.warnings.some((w) => w.startsWith('Plan (order downgrade-first): run "airflow db downgrade')),
    ).toBe(true);
  });

  it('uses --namespace for objects that name none', async () => {
    const manifests = parseManifests(renderChart({ version: '3.0.2', namespace: null }), 'chart.yaml');
    const report = await evaluateManifests(manifests, statedSource({ dbRevision: 'cc92b33c6709' }), {
      config: DEFAULT_CONFIG,
      namespace: 'team-a',
      user: 'ci',
    });
    expect(report.releases.map((r) => `${r.namespace}/${r.release}:${r.outcome}`)).toEqual([
      'team-a/airflow:downgrade',
    ]);
    expect(report.releases[0]?.from).toMatchObject({ revision: 'cc92b33c6709', source: 'dbRevision' });
  });
});

describe('plan command, offline', () => {
  it('exit 3 and the plan per release for a downgrade', async () => {
    const path = file('down.yaml', renderChart({ version: '3.0.2', hooks: true }));
    const { code, stdout, stderr } = await plan({ file: path, releaseVersion: '3.1.0' });
    expect(stderr).toBe('');
    expect(code).toBe(3);
    expect(stdout).toMatch(
      /^Plan for 13 document\(s\), 9 Airflow workload\(s\), against stated release state \(running version 3\.1\.0\), no cluster\./,
    );
    expect(stdout).toContain(
      'airflow/airflow: DOWNGRADE 3.1.0 -> 3.0.2 (schema cc92b33c6709 -> 29ce7909c52b), operation dg-',
    );
    expect(stdout).toContain('  command:    airflow db downgrade --to-revision 29ce7909c52b --yes');
    expect(stdout).toContain('  order:      drain-first');
    expect(stdout).toContain('  run in:     a short-lived runner pod of 3.1.0, after the drain');
    expect(stdout).toContain(
      [
        '  drain:      deployment/airflow-api-server (1)',
        '              deployment/airflow-scheduler (1)',
        '              deployment/airflow-dag-processor (1)',
        '              statefulset/airflow-triggerer (1)',
        '              statefulset/airflow-worker (1)',
        "              and the release's CronJobs (suspended)",
      ].join('\n'),
    );
    expect(stdout).toContain(
      [
        '  hold:       deployment/airflow-api-server (spec.paused=true)',
        '              deployment/airflow-scheduler (spec.paused=true)',
      ].join('\n'),
    );
    expect(stdout).toContain('  current:    3.1.0 from the running version');
    expect(stdout).toContain(
      '  outage:     5 workload(s), 5 pod(s) down from the drain until the 3.0.2 pods are Ready; no pod runs during the downgrade',
    );
    expect(stdout).toMatch(/CREATE +job\/airflow-run-airflow-migrations +downgrade +3\.1\.0 -> 3\.0\.2/);
    expect(stdout).toContain('document 2: Secret airflow-metadata: v1 Secret is not a workload the guard checks');
    expect(stdout.trimEnd().split('\n').at(-1)).toBe(
      'Result: a downgrade would be coordinated for 1 release(s) (exit 3).',
    );
  });

  it('exit 0 for a forward upgrade and for a same-head change, reading stdin', async () => {
    const forward = await plan({ file: '-', releaseVersion: '3.0.2' }, renderChart({ version: '3.1.0' }));
    expect(forward.code).toBe(0);
    expect(forward.stdout).toContain('airflow/airflow: no downgrade (forward, pass-through; 3.0.2 -> 3.1.0)');
    const sameHead = await plan({ file: '-', releaseVersion: '3.1.7' }, renderChart({ version: '3.1.0' }));
    expect(sameHead.code).toBe(0);
    expect(sameHead.stdout).toMatch(/no downgrade \(same-head/);
  });

  it('exit 1 when the guard would deny (Airflow 3 below 2.7.0), and the summary says so', async () => {
    const { code, stdout } = await plan({
      file: file('old.yaml', renderChart({ version: '2.6.3' })),
      releaseVersion: '3.1.0',
    });
    expect(code).toBe(1);
    expect(stdout).toContain('airflow/airflow: DENIED');
    expect(stdout).toContain('Result: the guard would deny changes to 1 release(s) (exit 1).');
    expect(stdout).toMatch(
      /denied: +airflow-downgrade-guard denied deployment\/airflow-api-server: Airflow 3 cannot downgrade the database below 2\.7\.0/,
    );
  });

  it('exit 4 when an Airflow version cannot be told (a private tag without the annotation), with the fix', async () => {
    const privateTag = renderChart({ version: '2.8.4' }).replaceAll(
      'apache/airflow:2.8.4',
      'registry.example.com/catalog-airflow-airflow:build-4711',
    );
    const { code, stdout } = await plan({ file: file('private.yaml', privateTag), releaseVersion: '2.9.3' });
    expect(code).toBe(4);
    expect(stdout).toMatch(
      /airflow\/airflow: UNDETERMINED — the guard cannot tell the Airflow version of 5 object\(s\)/,
    );
    expect(stdout).toContain(
      'Result: the Airflow version is undetermined for 1 release(s) (exit 4): set annotation airflow-downgrade-guard/airflow-version',
    );
    // The same manifests with the version annotated are an ordinary downgrade.
    const annotated = parseAllDocuments(privateTag)
      .map((doc) => {
        const object = doc.toJS() as { kind: string; metadata: { annotations?: Record<string, string> } };
        if (['Deployment', 'StatefulSet'].includes(object.kind))
          object.metadata.annotations = {
            ...object.metadata.annotations,
            'airflow-downgrade-guard/airflow-version': '2.8.4',
          };
        return `---\n${stringify(object)}`;
      })
      .join('');
    expect((await plan({ file: file('annotated.yaml', annotated), releaseVersion: '2.9.3' })).code).toBe(3);
  });

  it('--unknown-version deny turns undetermined into denied (exit 1); contradicting --strict exits 2', async () => {
    const privateTag = renderChart({ version: '2.8.4' }).replaceAll(
      'apache/airflow:2.8.4',
      'registry.example.com/airflow:build-4711',
    );
    expect(
      (await plan({ file: file('deny.yaml', privateTag), releaseVersion: '2.9.3', unknownVersion: 'deny' })).code,
    ).toBe(1);
    const conflict = await plan({
      file: file('conflict.yaml', privateTag),
      releaseVersion: '2.9.3',
      unknownVersion: 'allow',
      strict: true,
    });
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(/^error: --strict .* conflicts with --unknown-version allow\n$/);
  });

  it('over several releases the most severe outcome sets the exit code: 1 > 4 > 3 > 0', async () => {
    const release = (name: string, version: string, image?: string) => {
      const text = renderChart({ version, release: name });
      return image ? text.replaceAll(`apache/airflow:${version}`, image) : text;
    };
    const downgrade = release('a', '3.0.2');
    const undetermined = release('b', '3.0.2', 'registry.example.com/airflow:build-4711');
    const denied = release('c', '2.6.3');
    const forward = release('d', '3.1.7');
    const code = async (name: string, text: string) =>
      (await plan({ file: file(name, text), releaseVersion: '3.1.0' })).code;
    expect(await code('fwd.yaml', forward)).toBe(0);
    expect(await code('dg.yaml', forward + downgrade)).toBe(3);
    expect(await code('und.yaml', downgrade + undetermined + forward)).toBe(4);
    expect(await code('und2.yaml', undetermined + downgrade)).toBe(4);
    expect(await code('all.yaml', downgrade + undetermined + denied + forward)).toBe(1);
  });

  it('JSON output carries the decisions and the exit code', async () => {
    const { code, stdout } = await plan({
      file: file('json.yaml', renderChart({ version: '3.0.2' })),
      dbRevision: 'cc92b33c6709',
      output: 'json',
    });
    expect(code).toBe(3);
    const report = JSON.parse(stdout);
    expect(report.exitCode).toBe(3);
    expect(report.releases[0].outcome).toBe('downgrade');
    expect(report.releases[0].plan.argv).toEqual([
      'airflow',
      'db',
      'downgrade',
      '--to-revision',
      '29ce7909c52b',
      '--yes',
    ]);
    expect(report.releases[0].objects.every((o: { operation: string }) => o.operation === 'CREATE')).toBe(true);
  });

  it('exit 1 with one line for an unreadable file, bad YAML or a bad config', async () => {
    const missing = await plan({ file: join(dir, 'nope.yaml'), releaseVersion: '3.1.0' });
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toBe(`error: cannot read ${join(dir, 'nope.yaml')}: ENOENT\n`);
    const bad = await plan({
      file: file('bad.yaml', `${renderChart({ version: '3.0.2' })}---\nkind: [\n`),
      releaseVersion: '3.1.0',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*bad\.yaml: document 12 is not valid YAML/);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    const config = await plan({
      file: file('ok.yaml', renderChart({ version: '3.0.2' })),
      releaseVersion: '3.1.0',
      config: file('config.yaml', 'strict: maybe\n'),
    });
    expect(config.code).toBe(1);
    expect(config.stderr).toMatch(/^error: config .*config\.yaml: .*strict/);
  });

  it('no cluster and no stated state: exit 1 naming the kubeconfig problem', async () => {
    const { code, stderr } = await plan({
      file: file('k.yaml', renderChart({ version: '3.0.2' })),
      kubeconfig: join(dir, 'missing-kubeconfig'),
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: cannot load the Kubernetes configuration from .*missing-kubeconfig: /);
  });
});
