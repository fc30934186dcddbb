// Real Helm 3.17.2 and 4.1.4 drive the downgrade: the guard's own chart (deploy/chart) is installed
// with Helm first, then an Airflow release of the chart-shaped fixture chart (test/support/airflow-chart.ts)
// is moved with `helm upgrade --wait`, `helm rollback`, and checked with the dry-run recipes. The
// simulated cluster takes Helm's protobuf bodies (Secrets driver) and, for Helm 4, its server-side apply.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/install/manifests.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { writeAirflowFixtureChart } from '../support/airflow-chart.js';
import { HELM_MAJORS, helmFor, type Helm } from '../support/helm.js';
import { kubectlFor, removeKubectlDirs } from '../testbed/sim/support.js';
import {
  expectDowngraded,
  expectNoViolations,
  FULL_SEQUENCE,
  guardAnnotations,
  headOf,
  releaseReady,
  ROOT,
  stepSequence,
  waitFor,
  type ReleaseSpec,
} from './harness.js';
import { startInstalledE2E, type InstalledE2E } from './install-harness.js';

const GUARD_CHART = path.join(ROOT, 'deploy/chart');
const GUARD_NAMESPACE = 'airflow-downgrade-guard';
const GUARD_IMAGE = 'registry.example.com/platform/airflow-downgrade-guard:0.1.0';
const COMPONENTS = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'];
const spec = (version: string): ReleaseSpec => ({
  release: 'airflow',
  namespace: 'airflow',
  version,
  components: COMPONENTS,
  statefulSets: ['triggerer', 'worker'],
  replicas: { scheduler: 2 },
});

/** The scenario table of the closing note: Helm version × scenario × outcome × time to all pods Ready. */
const table: string[] = [];
afterAll(() => {
  if (table.length)
    console.log(['helm | scenario | outcome | helm exit | helm ms | to all pods Ready ms', ...table].join('\n'));
});

function run(
  file: string,
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env, timeout: 60_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
      }),
    );
    child.stdin?.end(input);
  });
}

for (const major of HELM_MAJORS) {
  describe(`Helm ${major}: the guard's chart, then an Airflow release guarded by it`, () => {
    let e2e: InstalledE2E;
    let helm: Helm;
    let dir: string;
    let airflowChart: string;

    /** `helm upgrade|rollback …` then the release running `version`; one row of the table. */
    const timed = async (scenario: string, args: string[], version: string, outcome: () => Promise<string>) => {
      const started = Date.now();
      const result = await helm.run(args);
      if (result.code !== 0)
        console.log(
          `helm ${major} ${args.join(' ')} exited ${result.code}: ${result.stderr}\noperation: ${JSON.stringify(e2e.operation('airflow', 'airflow'))}`,
        );
      await waitFor(`release running ${version}`, () => releaseReady(e2e.sim, spec(version)), 60_000, 50);
      const readyMs = Date.now() - started;
      expect(result.code, result.stderr).toBe(0);
      table.push(
        `${major} | ${scenario} | ${await outcome()} | ${result.code} | ${Math.round(result.ms)} | ${readyMs}`,
      );
      return result;
    };

    const pgbouncer = () => e2e.workload('Deployment', 'airflow', 'airflow-pgbouncer') as KubeObject;
    const pgbouncerPods = () =>
      e2e.sim.store
        .list(RESOURCES.pods, 'airflow')
        .items.filter((p) => p.metadata.labels?.component === 'pgbouncer')
        .map((p) => p.metadata.name)
        .sort();
    const operationId = () => e2e.operation('airflow', 'airflow')?.id;

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), `adg-helm${major}-e2e-`));
      airflowChart = writeAirflowFixtureChart(path.join(dir, 'airflow'));
      const renderer = helmFor(major, '');
      const manifests = parseAllDocuments(
        await renderer.template([
          'airflow-downgrade-guard',
          GUARD_CHART,
          '-n',
          GUARD_NAMESPACE,
          '--set',
          `image=${GUARD_IMAGE}`,
        ]),
      )
        .map((d) => d.toJS() as Manifest)
        .filter(Boolean);
      renderer.cleanup();
      e2e = await startInstalledE2E(manifests, {
        install: async (kubeconfig) => {
          helm = helmFor(major, kubeconfig);
          await helm.ok([
            'install',
            'airflow-downgrade-guard',
            GUARD_CHART,
            '-n',
            GUARD_NAMESPACE,
            '--set',
            `image=${GUARD_IMAGE}`,
          ]);
        },
      });
      // The chart's pods stand for the guard; the guard process itself runs beside the simulated cluster.
      await e2e.startGuard();
      await waitFor('caBundle injected by the guard', () => {
        const config = e2e.sim.store.get(
          RESOURCES.mutatingwebhookconfigurations,
          undefined,
          'airflow-downgrade-guard',
        ) as { webhooks?: Array<{ clientConfig?: { caBundle?: string } }> } | undefined;
        return config?.webhooks?.every((w) => w.clientConfig?.caBundle) ?? false;
      });
      await helm.ok([
        'install',
        'airflow',
        airflowChart,
        '-n',
        'airflow',
        '--create-namespace',
        '--set',
        `metadataConnection=${e2e.db.url}`,
        '--set',
        'airflowVersion=3.1.0',
        '--timeout',
        '5m',
      ]);
      await waitFor('release running 3.1.0', () => releaseReady(e2e.sim, spec('3.1.0')), 60_000, 50);
      expect(await e2e.revision()).toBe(headOf('3.1.0'));
    }, 300_000);

    afterAll(async () => {
      await e2e?.stop();
      helm?.cleanup();
      removeKubectlDirs();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('installed the guard with its own chart: Secrets driver record, webhook trusted, TLS Secret made by the guard', () => {
      expect(
        e2e.sim.store.get(RESOURCES.secrets, GUARD_NAMESPACE, 'sh.helm.release.v1.airflow-downgrade-guard.v1')?.type,
      ).toBe('helm.sh/release.v1');
      const config = e2e.sim.store.get(RESOURCES.mutatingwebhookconfigurations, undefined, 'airflow-downgrade-guard');
      expect(
        e2e.sim.store.get(RESOURCES.secrets, GUARD_NAMESPACE, 'airflow-downgrade-guard-tls')?.metadata.ownerReferences,
      ).toEqual([
        {
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'MutatingWebhookConfiguration',
          name: 'airflow-downgrade-guard',
          uid: config?.metadata.uid,
        },
      ]);
    });

    it('dry runs: `helm template | plan -f -` and `kubectl apply --dry-run=server` show the plan and change nothing', async () => {
      const before = JSON.stringify(
        [RESOURCES.deployments, RESOURCES.statefulsets, RESOURCES.cronjobs].map((r) =>
          e2e.sim.store.list(r, 'airflow').items.map((o) => [o.metadata.name, o.metadata.resourceVersion]),
        ),
      );
      const rendered = await helm.template([
        'airflow',
        airflowChart,
        '-n',
        'airflow',
        '--set',
        `metadataConnection=${e2e.db.url}`,
        '--set',
        'airflowVersion=3.0.2',
      ]);
      const kubeconfig = path.join(dir, 'admin-kubeconfig');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(kubeconfig, e2e.sim.api.kubeconfig(), { mode: 0o600 });
      const plan = await run(
        process.execPath,
        [
          path.join(ROOT, 'bin/airflow-downgrade-guard.js'),
          'plan',
          '-n',
          'airflow',
          '-f',
          '-',
          '--kubeconfig',
          kubeconfig,
        ],
        rendered,
      );
      expect(plan.code, plan.stderr).toBe(3);
      expect(plan.stdout).toMatch(/downgrade/i);
      expect(plan.stdout).toContain(headOf('3.0.2'));
      const kubectl = kubectlFor(e2e.sim.api.kubeconfig());
      const dry = await kubectl(['apply', '--dry-run=server', '-n', 'airflow', '-f', '-'], { input: rendered });
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stderr).toMatch(/airflow-downgrade-guard/);
      const after = JSON.stringify(
        [RESOURCES.deployments, RESOURCES.statefulsets, RESOURCES.cronjobs].map((r) =>
          e2e.sim.store.list(r, 'airflow').items.map((o) => [o.metadata.name, o.metadata.resourceVersion]),
        ),
      );
      expect(after).toBe(before);
      expect(e2e.operation('airflow', 'airflow')).toBeUndefined();
    });

    it(
      '`helm upgrade --wait --timeout 5m` to an older Airflow: held, downgraded, drained, released; Helm succeeds',
      { timeout: 360_000 },
      async () => {
        const pgbouncerBefore = pgbouncerPods();
        const pgbouncerSeen: Array<{ paused: unknown; replicas: unknown }> = [];
        const stopWatch = e2e.sim.store.watch(RESOURCES.deployments, 'airflow', undefined, (event) => {
          const d = event.object as KubeObject & { spec: { paused?: boolean; replicas?: number } };
          if (d.metadata.name === 'airflow-pgbouncer')
            pgbouncerSeen.push({ paused: d.spec.paused ?? false, replicas: d.spec.replicas });
        });
        await timed(
          'upgrade --wait 3.1.0 -> 3.0.2 (downgrade)',
          [
            'upgrade',
            'airflow',
            airflowChart,
            '-n',
            'airflow',
            '--reuse-values',
            '--set',
            'airflowVersion=3.0.2',
            '--wait',
            '--timeout',
            '5m',
          ],
          '3.0.2',
          async () => {
            const op = await expectDowngraded(e2e, spec('3.1.0'), '3.0.2');
            expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
            return `${op.phase}, ${stepSequence(op).join('>')}`;
          },
        );
        stopWatch();
        // pgbouncer is no Airflow code: never held or drained. (Under Helm 4 the simulated cluster's
        // approximation of server-side apply re-rolls its unchanged pod template; see docs/helm.md.)
        for (const seen of pgbouncerSeen) expect(seen).toEqual({ paused: false, replicas: 1 });
        if (major === 3) expect(pgbouncerPods()).toEqual(pgbouncerBefore);
        expect(guardAnnotations(pgbouncer())).toEqual([]);
        const history = await helm.history('airflow', 'airflow');
        expect(history.at(-1)).toMatchObject({ revision: 2, status: 'deployed' });
      },
    );

    it('a same-head change (3.0.2 -> 3.0.1) passes untouched', { timeout: 360_000 }, async () => {
      const before = operationId();
      await timed(
        'upgrade --wait 3.0.2 -> 3.0.1 (same head)',
        [
          'upgrade',
          'airflow',
          airflowChart,
          '-n',
          'airflow',
          '--reuse-values',
          '--set',
          'airflowVersion=3.0.1',
          '--wait',
          '--timeout',
          '5m',
        ],
        '3.0.1',
        async () => {
          expect(operationId()).toBe(before);
          expect(await e2e.revision()).toBe(headOf('3.0.2'));
          return 'untouched (no operation)';
        },
      );
      await expectNoViolations(e2e);
    });

    // Without --wait: Helm runs a post-upgrade hook only once the release is ready, and the new pods'
    // wait-for-airflow-migrations waits for that hook's migrations (the official chart's docs advise
    // against --wait with its hooks for this reason). A downgrade does not deadlock: the guard
    // downgrades the schema before the older pods start.
    it('a forward `helm upgrade` passes untouched', { timeout: 360_000 }, async () => {
      const before = operationId();
      await timed(
        'upgrade 3.0.1 -> 3.0.3 (forward, no --wait)',
        [
          'upgrade',
          'airflow',
          airflowChart,
          '-n',
          'airflow',
          '--reuse-values',
          '--set',
          'airflowVersion=3.0.3',
          '--timeout',
          '5m',
        ],
        '3.0.3',
        async () => {
          expect(operationId()).toBe(before);
          expect(await e2e.revision()).toBe(headOf('3.0.3'));
          // The official chart's forward upgrade itself: the 3.0.1 pods still running meet the 3.0.3
          // schema once the post-upgrade hook has migrated (not the guard's business; cleared here).
          e2e.sim.runtime.violations.clear();
          return 'untouched (no operation)';
        },
      );
    });

    // From 3.0.3: a downgrade to the same head as the first one, between other heads.
    it(
      '`helm rollback` to the older revision (no upgrade hooks run) is guarded like any downgrade',
      { timeout: 360_000 },
      async () => {
        const before = operationId();
        await timed(
          'rollback to revision 3 (3.0.3 -> 3.0.1)',
          ['rollback', 'airflow', '3', '-n', 'airflow', '--wait', '--timeout', '5m'],
          '3.0.1',
          async () => {
            const op = await waitFor(
              'a new operation done',
              () => {
                const current = e2e.operation('airflow', 'airflow');
                return current && current.id !== before && current.phase === 'done' && current;
              },
              60_000,
              100,
            );
            expect(op).toMatchObject({ fromVersion: '3.0.3', toVersion: '3.0.1' });
            const done = await expectDowngraded(e2e, spec('3.0.3'), '3.0.1');
            expect(done.id).toBe(op.id);
            expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
            return `${op.phase}, ${stepSequence(op).join('>')}`;
          },
        );
        expect((await helm.history('airflow', 'airflow')).at(-1)).toMatchObject({
          revision: 5,
          status: 'deployed',
          description: 'Rollback to 3',
        });
      },
    );

    // A second downgrade between the same schema heads is an operation of its own, also when another
    // downgrade to the same head (3.0.3 -> 3.0.1) finished in between.
    it('the same downgrade a second time (3.1.0 -> 3.0.2 again) is guarded again', { timeout: 600_000 }, async () => {
      await helm.ok([
        'upgrade',
        'airflow',
        airflowChart,
        '-n',
        'airflow',
        '--reuse-values',
        '--set',
        'airflowVersion=3.1.0',
        '--timeout',
        '5m',
      ]);
      await waitFor('release running 3.1.0', () => releaseReady(e2e.sim, spec('3.1.0')), 60_000, 50);
      // The forward upgrade's own exposures (the 3.0.1 pods meet the 3.1.0 schema once the hook has
      // migrated, as in the forward test above): not the guard's business.
      e2e.sim.runtime.violations.clear();
      const before = e2e.operation('airflow', 'airflow');
      await timed(
        'rollback to revision 2 (3.1.0 -> 3.0.2, second time)',
        ['rollback', 'airflow', '2', '-n', 'airflow', '--wait', '--timeout', '5m'],
        '3.0.2',
        async () => {
          const op = await waitFor(
            'a new operation done',
            () => {
              const current = e2e.operation('airflow', 'airflow');
              return current && current.openedAt !== before?.openedAt && current.phase === 'done' && current;
            },
            60_000,
            100,
          );
          await expectDowngraded(e2e, spec('3.1.0'), '3.0.2');
          return `${op.phase}, ${stepSequence(op).join('>')}`;
        },
      );
    });

    it(
      '`helm upgrade` of the guard chart: every Airflow change made during it is admitted by the guard; the webhook keeps its caBundle',
      { timeout: 360_000 },
      async () => {
        const caBundles = () =>
          (
            e2e.sim.store.get(
              RESOURCES.mutatingwebhookconfigurations,
              undefined,
              'airflow-downgrade-guard',
            ) as unknown as {
              webhooks: Array<{ clientConfig: { caBundle?: string } }>;
            }
          ).webhooks.map((w) => w.clientConfig.caBundle);
        const webhookCalls = () => [...e2e.webhookCalls.values()].reduce((a, b) => a + b, 0);
        const before = { caBundles: caBundles(), calls: webhookCalls() };
        expect(before.caBundles.every(Boolean)).toBe(true);
        let upgrading = true;
        const admitted: number[] = [];
        const refused: string[] = [];
        const changes = (async () => {
          for (let i = 0; upgrading; i++) {
            try {
              await e2e.admin.patch('Deployment', 'airflow', 'airflow-scheduler', [
                { op: 'add', path: '/metadata/labels/example.com~1touched', value: String(i) },
              ]);
              admitted.push(i);
            } catch (error) {
              refused.push((error as Error).message);
            }
          }
        })();
        const upgrade = await helm.run([
          'upgrade',
          'airflow-downgrade-guard',
          GUARD_CHART,
          '-n',
          GUARD_NAMESPACE,
          '--reuse-values',
          '--set',
          'labels.team=platform',
          '--wait',
          '--timeout',
          '2m',
        ]);
        upgrading = false;
        await changes;
        expect(upgrade.code, upgrade.stderr).toBe(0);
        expect(refused).toEqual([]);
        expect(admitted.length).toBeGreaterThan(0);
        expect(webhookCalls() - before.calls).toBeGreaterThanOrEqual(admitted.length);
        expect(caBundles()).toEqual(before.caBundles);
        expect(
          (e2e.sim.store.get(RESOURCES.deployments, GUARD_NAMESPACE, 'airflow-downgrade-guard') as KubeObject).metadata
            .labels?.team,
        ).toBe('platform');
        table.push(
          `${major} | helm upgrade of the guard chart (--wait) | ${admitted.length} Airflow changes during it, all admitted by the guard, caBundle kept | ${upgrade.code} | ${Math.round(upgrade.ms)} | -`,
        );
      },
    );

    // Last: the release is unguarded from here on.
    it('`helm uninstall` of the guard leaves nothing of it: webhook configuration, and the TLS Secret the guard made (owned by the configuration)', async () => {
      const from = e2e.sim.api.requests.length;
      await helm.ok(['uninstall', 'airflow-downgrade-guard', '-n', GUARD_NAMESPACE, '--wait', '--timeout', '2m']);
      expect(
        e2e.sim.store.get(RESOURCES.mutatingwebhookconfigurations, undefined, 'airflow-downgrade-guard'),
      ).toBeUndefined();
      expect(e2e.sim.store.list(RESOURCES.deployments, GUARD_NAMESPACE).items).toEqual([]);
      // Helm 3 orders kinds it does not know last: the webhook configuration goes after the Service and
      // the Deployment, in the same uninstall (docs/helm.md: delete it first for no window at all).
      // Helm 4 deletes it before them.
      const deleted = e2e.sim.api.requests
        .slice(from)
        .filter((r) => r.verb === 'delete' && r.code < 300)
        .map((r) => r.resource);
      const webhookFirst = deleted.indexOf('mutatingwebhookconfigurations') < deleted.indexOf('deployments');
      expect(webhookFirst).toBe(major === 4);
      table.push(
        `${major} | helm uninstall of the guard | webhook configuration deleted; delete order: ${deleted.join(' > ')} | 0 | - | -`,
      );
      // The Secret is not Helm's: the garbage collector deletes it with the webhook configuration that owns it.
      await waitFor(
        'TLS Secret deleted with its owner',
        () => !e2e.sim.store.get(RESOURCES.secrets, GUARD_NAMESPACE, 'airflow-downgrade-guard-tls'),
        10_000,
        20,
      );
      const left = Object.values(RESOURCES).flatMap((type) =>
        e2e.sim.store
          .list(type, type.namespaced ? GUARD_NAMESPACE : undefined)
          .items.filter((o) => type.namespaced || o.metadata.name.startsWith('airflow-downgrade-guard'))
          .filter((o) => !['Namespace', 'Event'].includes(o.kind))
          .map((o) => `${o.kind}/${o.metadata.name}`),
      );
      // The namespace stays (Helm does not delete what --create-namespace made), with its own default ServiceAccount.
      expect(left).toEqual(['ServiceAccount/default']);
    });
  });
}
