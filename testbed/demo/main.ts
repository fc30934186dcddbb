// `npm run demo`: the main job, end to end, in one terminal. Starts a real PostgreSQL (embedded,
// or DATABASE_URL), the simulated Kubernetes cluster and the guard (`serve`, over TLS), installs a
// chart-shaped Airflow 3.1.0 release, downgrades it to 3.0.2 the way `helm upgrade` does, and shows
// the progress and the resulting timeline.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { stringify } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import {
  operationConfigMapName,
  readOperationConfigMap,
  type OperationState,
} from '../../src/coordinator/operation.js';
import { readAlembicRevision } from '../../src/db/alembic.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { chartComponent, chartWorkload, type Json } from '../sim/chart.js';
import type { SimCluster } from '../sim/cluster.js';
import { RESOURCES } from '../sim/resources.js';
import type { KubeObject } from '../sim/types.js';
import { GUARD_CLI, startTestbed, type Testbed } from '../start.js';

const RELEASE = 'airflow';
const NAMESPACE = 'airflow';
const COMPONENTS: Array<{ component: string; kind: 'Deployment' | 'StatefulSet'; replicas: number }> = [
  { component: 'api-server', kind: 'Deployment', replicas: 1 },
  { component: 'scheduler', kind: 'Deployment', replicas: 2 },
  { component: 'dag-processor', kind: 'Deployment', replicas: 1 },
  { component: 'triggerer', kind: 'StatefulSet', replicas: 1 },
  { component: 'worker', kind: 'StatefulSet', replicas: 2 },
  { component: 'statsd', kind: 'Deployment', replicas: 1 },
];

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const started = Date.now();
const demoTime = (at: number): string => `${((at - started) / 1000).toFixed(2).padStart(6)}s`;
const clock = (): string => demoTime(Date.now());
function say(text: string): void {
  process.stdout.write(`${dim(clock())}  ${text}\n`);
}

function kubectlAvailable(): Promise<boolean> {
  return new Promise((resolve) => execFile('kubectl', ['version', '--client'], (err) => resolve(!err)));
}

function kubectl(kubeconfig: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

function releaseManifests(version: string, options: { job: boolean; workloads: boolean }): Json[] {
  const objects: Json[] = [];
  if (options.job)
    objects.push(
      chartWorkload({
        kind: 'Job',
        component: 'run-airflow-migrations',
        release: RELEASE,
        namespace: NAMESPACE,
        version,
      }),
    );
  if (options.workloads) {
    for (const c of COMPONENTS)
      objects.push(
        chartComponent({
          kind: c.kind,
          component: c.component,
          release: RELEASE,
          namespace: NAMESPACE,
          version,
          replicas: c.replicas,
        }),
      );
    objects.push(
      chartWorkload({
        kind: 'CronJob',
        component: 'database-cleanup',
        release: RELEASE,
        namespace: NAMESPACE,
        version,
      }),
    );
  }
  // kubectl apply takes what it reads; strip what the API server would have defaulted.
  return objects;
}

function pods(sim: SimCluster): KubeObject[] {
  return sim.store.list(RESOURCES.pods, NAMESPACE).items.filter((p) => p.metadata.labels?.release === RELEASE);
}

/** Every pod by name, grouped by image tag and phase (statsd's own tag included). */
function podSummary(sim: SimCluster): string {
  const groups = new Map<string, string[]>();
  for (const p of pods(sim).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const image =
      ((p.spec as { containers: Array<{ image: string }> }).containers[0]?.image ?? '').split(':').pop() ?? '?';
    const phase = p.metadata.deletionTimestamp
      ? 'Terminating'
      : String((p.status as { phase?: string } | undefined)?.phase ?? 'Pending');
    const key = `${image} ${phase}`;
    groups.set(key, [...(groups.get(key) ?? []), p.metadata.name]);
  }
  return [...groups.entries()].map(([k, names]) => `${k}: ${names.join(', ')}`).join('; ') || 'no pods';
}

function operation(sim: SimCluster): OperationState | undefined {
  const cm = sim.store.get(RESOURCES.configmaps, NAMESPACE, operationConfigMapName(RELEASE)) as
    (KubeObject & { data?: Record<string, string> }) | undefined;
  return readOperationConfigMap(cm)?.op;
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function ready(sim: SimCluster, version: string): boolean {
  const live = pods(sim).filter((p) => !p.metadata.deletionTimestamp);
  return COMPONENTS.every(({ component, replicas }) => {
    const mine = live.filter((p) => p.metadata.labels?.component === component);
    const image = component === 'statsd' ? 'statsd-exporter' : `apache/airflow:${version}`;
    return (
      mine.length === replicas &&
      mine.every((p) => {
        const status = p.status as { phase?: string; conditions?: Array<{ type: string; status: string }> } | undefined;
        const img = (p.spec as { containers: Array<{ image: string }> }).containers[0]?.image ?? '';
        return (
          status?.phase === 'Running' &&
          status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
          img.includes(image)
        );
      })
    );
  });
}

function jobComplete(sim: SimCluster): boolean {
  const job = sim.store.get(RESOURCES.jobs, NAMESPACE, `${RELEASE}-run-airflow-migrations`) as
    { status?: { conditions?: Array<{ type: string; status: string }> } } | undefined;
  return job?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ?? false;
}

async function main(): Promise<void> {
  let testbed: Testbed | undefined;
  const cleanup = async (): Promise<void> => {
    await testbed?.stop().catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    console.log(bold('airflow-downgrade-guard demo: Airflow 3.1.0 -> 3.0.2 with `helm upgrade`, made safe\n'));
    // PostgreSQL (its metadata database) and the simulated cluster, the guard's namespace, certificate
    // and ServiceAccount identity: the testbed starter.
    testbed = await startTestbed({
      prefix: 'adg-demo-',
      postgres: true,
      sim: {
        podStartDelayMs: 400,
        controllers: { readyDelayMs: 300, probeIntervalMs: 50, graceUnitMs: 30 },
        runtime: { stepDurationMs: 700, checkIntervalMs: 100, readyDelayMs: 300, secondMs: 200 },
      },
    });
    const sim = testbed.sim;
    const metadataUrl = testbed.metadataUrl!;
    const auditUrl = await testbed.postgres!.createDatabase('guard_audit');
    say(`PostgreSQL ready (metadata database and audit database)`);
    const kubeconfigPath = testbed.adminKubeconfig;
    const kc = new KubeConfig();
    kc.loadFromString(sim.api.kubeconfig());
    const admin = new Cluster(new KubeRest(kc));
    say(`Simulated Kubernetes API server at ${sim.api.url} (kubectl --kubeconfig ${kubeconfigPath})`);

    // The guard, and its webhook registration.
    const guardLog = path.join(testbed.dir, 'guard.log');
    const guard = await testbed
      .startGuard('guard-0', { args: ['--audit-database-url', auditUrl], spawn: { logFile: guardLog } })
      .catch((error: unknown) => {
        throw new Error(`the guard did not start: ${(error as Error).message}`);
      });
    testbed.registerWebhook(`https://127.0.0.1:${guard.port}`);
    say(
      `Guard serving on https://127.0.0.1:${guard.port} (logs: ${guardLog}); MutatingWebhookConfiguration registered`,
    );

    // Airflow 3.1.0, as `helm install` would create it.
    await admin.create('Namespace', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    await admin.create('Secret', NAMESPACE, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${RELEASE}-metadata`, namespace: NAMESPACE },
      data: { connection: Buffer.from(metadataUrl).toString('base64') },
    });
    const useKubectl = await kubectlAvailable();
    const apply = async (objects: Json[]): Promise<string> => {
      if (useKubectl) {
        const result = await kubectl(
          kubeconfigPath,
          ['apply', '-f', '-'],
          objects.map((o) => stringify(o)).join('---\n'),
        );
        if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.out}`);
        return result.out;
      }
      for (const o of objects)
        await admin.rest.request(
          'POST',
          `/apis/${String(o.apiVersion)}/namespaces/${NAMESPACE}/${String(o.kind).toLowerCase()}s`,
          { body: o },
        );
      return '';
    };
    await apply(releaseManifests('3.1.0', { job: true, workloads: false }));
    await waitUntil('the migration job', () => jobComplete(sim), 60_000);
    await admin.delete('Job', NAMESPACE, `${RELEASE}-run-airflow-migrations`, 0);
    await apply(releaseManifests('3.1.0', { job: false, workloads: true }));
    await waitUntil('Airflow 3.1.0 to run', () => ready(sim, '3.1.0'));
    say(
      `Airflow 3.1.0 running: ${podSummary(sim)}; alembic_version = ${(await readAlembicRevision(metadataUrl)).revision}`,
    );

    // The downgrade, the way `helm upgrade --version <3.0.2 chart>` sends it (migration Job as post-upgrade hook).
    console.log(
      `\n${bold('$ helm upgrade airflow apache-airflow/airflow --set airflowVersion=3.0.2')}   ${dim(useKubectl ? '(kubectl apply of the rendered chart)' : '(API calls)')}`,
    );
    const upgradeStart = Date.now();
    const output = [
      await apply(releaseManifests('3.0.2', { job: false, workloads: true })),
      // The migration Job, a post-upgrade hook: created after the workloads, held with them.
      await apply(releaseManifests('3.0.2', { job: true, workloads: false })),
    ].join('\n');
    // Every distinct warning: each held workload's own line, the shared plan once.
    const warnings = output.split('\n').filter((l) => l.startsWith('Warning:'));
    for (const w of new Set(warnings)) console.log(`  ${w}`);
    console.log('');

    let lastPhase = '';
    let lastPods = '';
    await waitUntil(
      'the downgrade to finish',
      async () => {
        const op = operation(sim);
        const summary = podSummary(sim);
        if (op && op.phase !== lastPhase) {
          lastPhase = op.phase;
          say(`${bold(`operation ${op.id}: ${op.phase}`)}${op.heldReason ? ` — ${op.heldReason}` : ''}`);
        }
        if (summary !== lastPods) {
          lastPods = summary;
          say(dim(`pods: ${summary}`));
        }
        if (op?.phase === 'held') throw new Error(`the release is held: ${op.heldReason ?? ''}`);
        return op?.phase === 'done' && ready(sim, '3.0.2') && jobComplete(sim);
      },
      180_000,
    );
    const total = Date.now() - upgradeStart;
    const revision = (await readAlembicRevision(metadataUrl)).revision;
    await sim.runtime.sweep();
    const violations = sim.runtime.violations.list();
    const op = operation(sim)!;
    console.log(`\n${bold('Result')}`);
    console.log(`  Airflow 3.0.2 running: ${podSummary(sim)}`);
    console.log(`  alembic_version = ${revision} (3.0.2's head is 29ce7909c52b)`);
    console.log(`  violations (an older pod against a newer schema, or the reverse): ${violations.length}`);
    console.log(`  from helm upgrade to everything Ready on 3.0.2: ${(total / 1000).toFixed(1)} s`);
    // One time base for everything the demo prints: seconds since the demo started.
    console.log(
      `\n${bold('Timeline of the operation')} ${dim(`(ConfigMap ${NAMESPACE}/${operationConfigMapName(RELEASE)}; times since the demo started, as above)`)}`,
    );
    for (const step of op.steps) {
      console.log(
        `  ${demoTime(Date.parse(step.at))}  ${step.step.padEnd(16)} ${step.outcome.padEnd(8)} ${step.durationMs ? `${step.durationMs} ms`.padStart(8) : ''.padStart(8)}  ${dim(step.detail ?? '')}`,
      );
    }
    console.log(`\n${bold('$ airflow-downgrade-guard audit --release airflow --output timeline')}`);
    await guard.stop('SIGTERM');
    const audit = await new Promise<string>((resolve) =>
      execFile(
        process.execPath,
        [GUARD_CLI, 'audit', '--database-url', auditUrl, '--release', RELEASE, '--output', 'timeline'],
        (_e, out, err) => resolve(`${out}${err}`),
      ),
    );
    // The operations' timelines; the individual admissions outside them are in the full output.
    const operationPart = audit.split(/\n\s*not part of an operation/)[0] ?? audit;
    const since = /since (\d{4}-\d\d-\d\dT[\d:.]+Z)/.exec(operationPart)?.[1];
    if (since)
      console.log(
        dim(
          `  (the audit CLI counts +0s from the operation's first record, at ${demoTime(Date.parse(since)).trim()} in the demo's time)`,
        ),
      );
    console.log(
      operationPart
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
    if (violations.length > 0 || revision !== '29ce7909c52b') {
      process.exitCode = 1;
      console.log(bold('The demo found a problem (see above).'));
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
