// End-to-end harness: the simulated cluster + a real Postgres + the real guard (`serve` as a
// subprocess, over TLS, with its own ServiceAccount identity and, optionally, the deploy/ RBAC),
// brought up by the testbed starter (testbed/start.ts) the demo and the benchmarks use too.
import type { ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { KubeConfig } from '@kubernetes/client-node';
import type { SimCluster } from '../../testbed/sim/cluster.js';
import {
  GUARD_NAMESPACE,
  guardEnv,
  guardWebhookConfiguration,
  serveArgv,
  spawnGuard as spawnTestbedGuard,
  startTestbed,
  waitFor,
  writeGuardTls,
  type Guard,
  type GuardTls,
} from '../../testbed/start.js';
import { simProtobufConverter } from '../../testbed/sim/protobuf-converter.js';
import { createRbacAuthorizer, rbacObjectsFrom } from '../../testbed/sim/rbac/authorizer.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { renderInstallManifests } from '../../src/install/manifests.js';
import { parseOperation, operationConfigMapName, type OperationState } from '../../src/coordinator/operation.js';
import { readAlembicRevision } from '../../src/db/alembic.js';
import { chartComponent, chartWorkload } from '../fixtures/admission/builders.js';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres.js';
import { spawnOwned, stopOwned } from '../support/processes.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { headForVersion } from '../../src/core/heads.js';
import { ANNOTATIONS } from '../../src/core/config.js';
import { parseAirflowVersion } from '../../src/core/versions.js';

export {
  GUARD_NAMESPACE,
  GUARD_USER,
  REPO_ROOT as ROOT,
  servingPort,
  waitFor,
  type Guard,
} from '../../testbed/start.js';

export interface ReleaseSpec {
  release: string;
  namespace: string;
  version: string;
  /** Components as Deployments unless listed in statefulSets. */
  components?: string[];
  statefulSets?: string[];
  replicas?: Record<string, number>;
  cronJobs?: boolean;
  /** The Airflow image of a version (default `apache/airflow:<version>`), e.g. a private registry's build tag. */
  image?: (version: string) => string;
}

/** The image the release's Airflow workloads run at `version`. */
export function imageOf(spec: ReleaseSpec, version: string): string {
  return spec.image?.(version) ?? `apache/airflow:${version}`;
}

export const DEFAULT_COMPONENTS = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'];

/** A 3.1.0 release named `name` in its own namespace, with two schedulers. */
export function releaseSpec(name: string): ReleaseSpec {
  return { release: name, namespace: name, version: '3.1.0', replicas: { scheduler: 2 } };
}

/**
 * What the scenarios read of the cluster they run on: its objects (the simulated cluster's store, or
 * a watch-fed mirror of a real API server's objects) and the simulated Airflow runtime (violations,
 * faults) of its node side.
 */
export type ClusterUnderTest = Pick<SimCluster, 'store' | 'runtime'>;

export interface E2E<C extends ClusterUnderTest = SimCluster> {
  sim: C;
  db: TestDatabase;
  admin: Cluster;
  guards: Guard[];
  rbac?: ReturnType<typeof createRbacAuthorizer>;
  caPem: string;
  /** A kubeconfig of the cluster's administrator (what an operator's kubectl uses). */
  adminKubeconfig: string;
  startGuard(identity?: string, extraArgs?: string[], options?: { port?: number }): Promise<Guard>;
  installRelease(spec: ReleaseSpec): Promise<void>;
  /** The stored object; typed loosely because tests read kind-specific fields (spec.paused, spec.replicas, ...). */
  workload(kind: string, namespace: string, name: string): any;
  operation(namespace: string, release: string): OperationState | undefined;
  revision(): Promise<string | null>;
  stop(): Promise<void>;
}

function restFor(kubeconfig: string): Cluster {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return new Cluster(new KubeRest(kc), { attempts: 3, baseDelayMs: 50 });
}

function kindType(kind: string) {
  switch (kind) {
    case 'Deployment':
      return RESOURCES.deployments;
    case 'StatefulSet':
      return RESOURCES.statefulsets;
    case 'Job':
      return RESOURCES.jobs;
    case 'CronJob':
      return RESOURCES.cronjobs;
    case 'Pod':
      return RESOURCES.pods;
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

export interface E2EOptions {
  /** Enforce the deploy/ RBAC for the guard's ServiceAccount. */
  rbac?: boolean;
  stepDurationMs?: number;
  podStartDelayMs?: number;
  watchNamespaces?: string[];
  /**
   * 'self-managed': the guard makes its own serving certificate (with the 127.0.0.1 IP SAN) and
   * injects the caBundle into the webhook registered by URL; 'files' (default): the harness does both.
   */
  certMode?: 'files' | 'self-managed';
  /** Deleted pods for which this says true stay Terminating (the kubelet asks again while it does). */
  stuckTerminating?: (pod: KubeObject) => boolean;
  /** The guard's --order (the e2e default is downgrade-first, the order the older scenarios were written for). */
  order?: 'drain-first' | 'downgrade-first';
}

/** The cluster the end-to-end harness drives: the simulated one (startE2E) or a real one (test/cluster). */
export interface E2EBackend<C extends ClusterUnderTest = SimCluster> {
  cluster: C;
  adminKubeconfig: string;
  /** A kubeconfig with a token of the ServiceAccount (called once it exists). */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  rbac?: ReturnType<typeof createRbacAuthorizer>;
  /** The guard's serving certificate, when the backend made one (else the harness does). */
  tls?: GuardTls;
  stop(): Promise<void>;
}

export async function startE2E(options: E2EOptions = {}): Promise<E2E> {
  const db = await createTestDatabase('e2e');
  const holder: { rbac?: ReturnType<typeof createRbacAuthorizer> } = {};
  let simRef: SimCluster | undefined;
  if (options.rbac) {
    holder.rbac = createRbacAuthorizer(() => rbacObjectsFrom(simRef ? allRbacObjects(simRef) : []));
  }
  const testbed = await startTestbed({
    prefix: 'adg-e2e-sim-',
    sim: {
      databaseUrl: db.url,
      podStartDelayMs: options.podStartDelayMs ?? 40,
      controllers: {
        readyDelayMs: 40,
        probeIntervalMs: 25,
        graceUnitMs: 10,
        ...(options.stuckTerminating ? { stuckTerminating: options.stuckTerminating } : {}),
      },
      runtime: {
        stepDurationMs: options.stepDurationMs ?? 40,
        checkIntervalMs: 25,
        readyDelayMs: 30,
        secondMs: 100,
        taskDurationMs: 200,
      },
      api: holder.rbac ? { authorize: (req) => holder.rbac!.authorize(req) } : {},
      protobufConverter: simProtobufConverter(),
    },
  }).catch(async (error: unknown) => {
    await db.drop();
    throw error;
  });
  const sim = testbed.sim;
  simRef = sim;
  const backend: E2EBackend = {
    cluster: sim,
    adminKubeconfig: sim.api.kubeconfig(),
    serviceAccountKubeconfig: async (namespace, name) =>
      sim.api.kubeconfig(sim.api.tokens.issueServiceAccountToken(namespace, name)),
    ...(holder.rbac ? { rbac: holder.rbac } : {}),
    tls: testbed.tls,
    stop: () => testbed.stop(),
  };
  return startE2EOn(backend, db, options);
}

/** The harness on a running cluster; `db` is the metadata database of its Airflow releases. */
export async function startE2EOn<C extends ClusterUnderTest>(
  backend: E2EBackend<C>,
  db: TestDatabase,
  options: E2EOptions = {},
): Promise<E2E<C>> {
  const sim = backend.cluster;
  const admin = restFor(backend.adminKubeconfig);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'adg-e2e-'));
  const tls = backend.tls ?? writeGuardTls(dir);

  await admin
    .create('Namespace', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: GUARD_NAMESPACE } })
    .catch(() => undefined);
  const install = renderInstallManifests({
    namespace: GUARD_NAMESPACE,
    watchNamespaces: options.watchNamespaces ?? [],
    certMode: options.certMode ?? 'files',
  } as never) as KubeObject[];
  for (const obj of install) {
    if (['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ServiceAccount'].includes(obj.kind)) {
      await createObject(admin, obj);
    }
  }
  const guardKubeconfig = path.join(dir, 'guard-kubeconfig');
  writeFileSync(guardKubeconfig, await backend.serviceAccountKubeconfig(GUARD_NAMESPACE, 'airflow-downgrade-guard'), {
    mode: 0o600,
  });
  const guards: Guard[] = [];
  // Every guard process from its spawn on (also one still starting when the test ends).
  const children = new Set<ChildProcess>();
  let stopped = false;
  let webhookPort: number | undefined;

  const e2e: E2E<C> = {
    sim,
    db,
    admin,
    guards,
    caPem: tls.caPem,
    adminKubeconfig: backend.adminKubeconfig,
    ...(backend.rbac ? { rbac: backend.rbac } : {}),
    async startGuard(identity = `guard-${guards.length + 1}`, extraArgs = [], startOptions = {}) {
      const selfManaged = options.certMode === 'self-managed';
      // Port 0 unless a restart must come back on the same one: the guard binds it and logs it, so no
      // other test's server can take a port chosen ahead of time. Self-managed mode needs the webhook
      // registered (by URL) before the guard starts, so the port is asked from the kernel first.
      const port = startOptions.port ?? (selfManaged && webhookPort === undefined ? await freePort() : 0);
      if (selfManaged && webhookPort === undefined) {
        webhookPort = port;
        await registerWebhook(admin, install, port, undefined);
      }
      const guard = await spawnGuard(
        identity,
        serveArgv({
          port,
          identity,
          kubeconfig: guardKubeconfig,
          tls: selfManaged ? 'self-managed' : tls,
          args: [
            '--lease-duration-seconds',
            '3',
            '--drain-timeout-ms',
            '20000',
            '--exec-timeout-ms',
            '20000',
            // The scenarios written for the downgrade-first order; drain-first ones pass --order drain-first.
            '--order',
            options.order ?? 'downgrade-first',
            ...(options.watchNamespaces?.length ? ['--watch-namespaces', options.watchNamespaces.join(',')] : []),
            ...extraArgs,
          ],
        }),
        guardEnv(),
        undefined,
        (child) => children.add(child),
      );
      if (stopped) {
        await guard.stop('SIGKILL');
        throw new Error(`guard ${identity} started after the test environment stopped`);
      }
      guards.push(guard);
      if (webhookPort === undefined) {
        webhookPort = guard.port;
        await registerWebhook(admin, install, guard.port, tls.caPem);
      }
      return guard;
    },
    async installRelease(spec) {
      await createObject(admin, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: spec.namespace, labels: { 'kubernetes.io/metadata.name': spec.namespace } },
      });
      await createObject(admin, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `${spec.release}-metadata`, namespace: spec.namespace },
        type: 'Opaque',
        data: { connection: Buffer.from(db.url).toString('base64') },
      });
      // The chart's ServiceAccounts: a real API server refuses pods whose ServiceAccount does not exist.
      for (const component of [
        'run-airflow-migrations',
        'database-cleanup',
        ...(spec.components ?? DEFAULT_COMPONENTS),
      ]) {
        await createObject(admin, {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: `${spec.release}-${component}`, namespace: spec.namespace },
        });
      }
      const migrate = migrationJob(spec);
      await createObject(admin, migrate);
      await waitFor('migration job complete', () => jobComplete(sim, spec.namespace, migrate.metadata.name), 30_000);
      await admin.delete('Job', spec.namespace, migrate.metadata.name, 0);
      for (const component of spec.components ?? DEFAULT_COMPONENTS) {
        const kind = spec.statefulSets?.includes(component) ? 'StatefulSet' : 'Deployment';
        const workload = chartComponent({
          kind,
          component,
          release: spec.release,
          namespace: spec.namespace,
          version: spec.version,
          replicas: spec.replicas?.[component] ?? 1,
          ...(component === 'statsd' ? {} : { image: imageOf(spec, spec.version) }),
        });
        await createObject(admin, workload as KubeObject);
      }
      if (spec.cronJobs !== false) {
        await createObject(
          admin,
          chartWorkload({
            kind: 'CronJob',
            component: 'database-cleanup',
            release: spec.release,
            namespace: spec.namespace,
            version: spec.version,
            image: imageOf(spec, spec.version),
          }) as KubeObject,
        );
      }
      await waitFor('release pods ready', () => releaseReady(sim, spec), 30_000);
    },
    workload(kind, namespace, name) {
      return sim.store.get(kindType(kind), namespace, name);
    },
    operation(namespace, release) {
      const cm = sim.store.get(RESOURCES.configmaps, namespace, operationConfigMapName(release)) as
        (KubeObject & { data?: Record<string, string> }) | undefined;
      const text = cm?.data?.['operation.json'];
      return text ? parseOperation(text) : undefined;
    },
    async revision() {
      return (await readAlembicRevision(db.url)).revision;
    },
    async stop() {
      stopped = true;
      await Promise.all([...children].map((child) => stopOwned(child, 'SIGKILL')));
      await backend.stop();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return e2e;
}

/**
 * Starts `serve` as a subprocess (argv after the node binary) in a process group of its own
 * (test/support/processes.ts), collects its log lines, and resolves once it logs that it serves,
 * with the port it bound. `beforeStop` runs first in `stop()`; `onSpawn` learns of the process at
 * once, so an owner can kill a guard that is still starting.
 */
export function spawnGuard(
  identity: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  beforeStop?: () => void,
  onSpawn?: (child: ChildProcess) => void,
): Promise<Guard> {
  return spawnTestbedGuard(identity, args, {
    env,
    spawn: spawnOwned,
    kill: stopOwned,
    ...(beforeStop ? { beforeStop } : {}),
    ...(onSpawn ? { onSpawn } : {}),
  });
}

function allRbacObjects(sim: SimCluster): KubeObject[] {
  return [
    ...sim.store.list(RESOURCES.roles).items,
    ...sim.store.list(RESOURCES.rolebindings).items,
    ...sim.store.list(RESOURCES.clusterroles).items,
    ...sim.store.list(RESOURCES.clusterrolebindings).items,
  ];
}

async function createObject(admin: Cluster, obj: KubeObject): Promise<void> {
  const kind = obj.kind as Parameters<Cluster['create']>[0];
  const rest = admin.rest;
  const group = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const plural = PLURALS[obj.kind];
  if (!plural) throw new Error(`no plural for ${obj.kind} (${String(kind)})`);
  const ns = obj.metadata.namespace;
  const url = `${group}${ns ? `/namespaces/${ns}` : ''}/${plural}`;
  try {
    await rest.request('POST', url, { body: obj });
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error;
  }
}

const PLURALS: Record<string, string> = {
  Namespace: 'namespaces',
  Secret: 'secrets',
  ServiceAccount: 'serviceaccounts',
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  Job: 'jobs',
  CronJob: 'cronjobs',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
};

/** Registers the install's webhook by URL; without caPem the guard injects the caBundle itself (self-managed mode). */
async function registerWebhook(
  admin: Cluster,
  install: KubeObject[],
  port: number,
  caPem: string | undefined,
): Promise<void> {
  await createObject(admin, guardWebhookConfiguration(`https://127.0.0.1:${port}`, caPem, install));
}

/** The chart's `run-airflow-migrations` Job of the release at `version`. */
export function migrationJob(spec: ReleaseSpec, version = spec.version): KubeObject {
  return chartWorkload({
    kind: 'Job',
    component: 'run-airflow-migrations',
    release: spec.release,
    namespace: spec.namespace,
    version,
    image: imageOf(spec, version),
  }) as KubeObject;
}

export function jobComplete(sim: ClusterUnderTest, namespace: string, name: string): boolean {
  const job = sim.store.get(RESOURCES.jobs, namespace, name) as
    { status?: { conditions?: Array<{ type: string; status: string }> } } | undefined;
  return job?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ?? false;
}

export function podsOf(sim: ClusterUnderTest, namespace: string, release: string): KubeObject[] {
  return sim.store.list(RESOURCES.pods, namespace).items.filter((p) => p.metadata.labels?.release === release);
}

export function podImage(pod: KubeObject): string {
  const spec = pod.spec as { containers: Array<{ image: string }> };
  return spec.containers[0]?.image ?? '';
}

function isReady(pod: KubeObject): boolean {
  const status = pod.status as { phase?: string; conditions?: Array<{ type: string; status: string }> } | undefined;
  return (
    status?.phase === 'Running' && (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** Every workload of the release runs its replicas, all Ready, all on the spec's version. */
export function releaseReady(sim: ClusterUnderTest, spec: ReleaseSpec): boolean {
  const pods = podsOf(sim, spec.namespace, spec.release).filter((p) => !p.metadata.deletionTimestamp);
  for (const component of spec.components ?? DEFAULT_COMPONENTS) {
    const want = spec.replicas?.[component] ?? 1;
    const mine = pods.filter((p) => p.metadata.labels?.component === component);
    const image = component === 'statsd' ? 'statsd-exporter' : imageOf(spec, spec.version);
    if (mine.length !== want || !mine.every((p) => isReady(p) && podImage(p).includes(image))) return false;
  }
  return true;
}

/** A Helm upgrade to `version`: every workload's image changes; the migration Job as a hook. */
export async function helmUpgrade(
  e2e: E2E<ClusterUnderTest>,
  spec: ReleaseSpec,
  version: string,
  hook: 'pre-upgrade' | 'post-upgrade',
): Promise<UpgradeResult> {
  return upgradeRelease(e2e, spec, version, { hook });
}

export interface UpgradeOptions {
  /** Where the migration Job runs: before the workloads (Helm pre-upgrade), after them, or not at all. */
  hook: 'pre-upgrade' | 'post-upgrade' | 'none';
  /** Pause between workloads (an Argo CD sync applying resources one by one). */
  pauseMs?: number;
  /** Retry an update the API server refused because the webhook was unreachable (Argo retries a sync). */
  retryUnreachableWebhook?: boolean;
}

export interface AppliedWorkload {
  kind: string;
  name: string;
  /** The live object carried the coordinator's drained annotation when the update was sent. */
  wasDrained: boolean;
  /** spec.replicas as admitted (after the guard's mutation). */
  admittedReplicas: unknown;
  /** When the API server answered the update (ms since epoch). */
  admittedAt: number;
}

export interface UpgradeResult {
  /** Creation to completion of the hook Job (what Helm waits for). */
  hookJobMs?: number;
  applied: AppliedWorkload[];
}

/** Every workload of the release moves to `version` the way a deploy tool applies a chart. */
export async function upgradeRelease(
  e2e: E2E<ClusterUnderTest>,
  spec: ReleaseSpec,
  version: string,
  options: UpgradeOptions,
): Promise<UpgradeResult> {
  const result: UpgradeResult = { applied: [] };
  const runJob = async (): Promise<void> => {
    const job = migrationJob(spec, version);
    const started = Date.now();
    await replaceHookJob(e2e, spec, job);
    // Helm waits for the hook Job to complete (pre-upgrade: before it applies the rest of the release).
    await waitFor(
      `${options.hook} hook job complete`,
      () => jobComplete(e2e.sim, spec.namespace, job.metadata.name),
      60_000,
      20,
    );
    result.hookJobMs = Date.now() - started;
  };
  if (options.hook === 'pre-upgrade') await runJob();
  for (const component of spec.components ?? DEFAULT_COMPONENTS) {
    if (component === 'statsd') continue;
    const kind = spec.statefulSets?.includes(component) ? 'StatefulSet' : 'Deployment';
    const name = `${spec.release}-${component}`;
    const wasDrained = guardAnnotations(e2e.workload(kind, spec.namespace, name)).includes(ANNOTATIONS.drained);
    // Helm's three-way merge and Argo's apply set every field of the chart, spec.replicas included.
    const admitted = await send(
      `${name} admitted`,
      () =>
        setImage(e2e, kind, spec.namespace, name, version, {
          replicas: spec.replicas?.[component] ?? 1,
          image: imageOf(spec, version),
        }),
      options,
    );
    result.applied.push({
      kind,
      name,
      wasDrained,
      admittedReplicas: (admitted.spec as { replicas?: unknown } | undefined)?.replicas,
      admittedAt: Date.now(),
    });
    if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
  }
  await updateCronJobs(e2e, spec, version, options);
  if (options.hook === 'post-upgrade') await runJob();
  return result;
}

/**
 * One update of the sync. With `retryUnreachableWebhook`, an update the API server refused because
 * it could not call the webhook (the guard restarting) is sent again until admitted, like every
 * other update of the sync: Deployments, StatefulSets and CronJobs alike.
 */
async function send<T>(what: string, apply: () => Promise<T>, options: UpgradeOptions): Promise<T> {
  if (!options.retryUnreachableWebhook) return apply();
  return waitFor(
    what,
    () =>
      apply().catch((error: Error) => (/failed calling webhook/.test(error.message) ? false : Promise.reject(error))),
    30_000,
    100,
  );
}

/** Helm's `before-hook-creation` delete policy: the previous hook Job goes before the new one is created. */
async function replaceHookJob(e2e: E2E<ClusterUnderTest>, spec: ReleaseSpec, job: KubeObject): Promise<void> {
  const name = job.metadata.name;
  if (e2e.workload('Job', spec.namespace, name)) {
    await e2e.admin.delete('Job', spec.namespace, name, 0).catch(() => undefined);
    await waitFor(`old hook job ${name} gone`, () => !e2e.workload('Job', spec.namespace, name), 10_000, 20);
  }
  await createObject(e2e.admin, job);
}

async function updateCronJobs(
  e2e: E2E<ClusterUnderTest>,
  spec: ReleaseSpec,
  version: string,
  options: UpgradeOptions,
): Promise<void> {
  if (spec.cronJobs === false) return;
  const name = `${spec.release}-database-cleanup`;
  const current = e2e.workload('CronJob', spec.namespace, name) as
    | (KubeObject & {
        spec: { jobTemplate: { spec: { template: { spec: { containers: Array<{ image: string }> } } } } };
      })
    | undefined;
  if (!current) return;
  await send(
    `${name} admitted`,
    () =>
      e2e.admin.patch('CronJob', spec.namespace, name, [
        {
          op: 'replace',
          path: '/spec/jobTemplate/spec/template/spec/containers/0/image',
          value: imageOf(spec, version),
        },
      ]),
    options,
  );
}

/**
 * `kubectl set image` on one workload: a strategic merge patch of the main container's image. With
 * `replicas` it is what `helm upgrade`/`kubectl apply`/an Argo sync send: the chart's replica count too.
 */
export async function setImage(
  e2e: E2E<ClusterUnderTest>,
  kind: string,
  namespace: string,
  name: string,
  version: string,
  options: { replicas?: number; image?: string } = {},
): Promise<KubeObject> {
  const obj = e2e.workload(kind, namespace, name) as
    | (KubeObject & {
        spec: {
          template: {
            spec: {
              containers: Array<{ name: string; image: string }>;
              initContainers?: Array<{ name: string; image: string }>;
            };
          };
        };
      })
    | undefined;
  if (!obj) throw new Error(`${kind} ${namespace}/${name} not found`);
  const image = options.image ?? `apache/airflow:${version}`;
  const containers = obj.spec.template.spec.containers.map((c) => ({ name: c.name, image }));
  const initContainers = (obj.spec.template.spec.initContainers ?? []).map((c) => ({ name: c.name, image }));
  const plural = PLURALS[kind];
  const group = kind === 'Job' || kind === 'CronJob' ? '/apis/batch/v1' : '/apis/apps/v1';
  // The response is the object as admitted (after the guard's mutation).
  return e2e.admin.rest.request<KubeObject>('PATCH', `${group}/namespaces/${namespace}/${plural}/${name}`, {
    body: {
      spec: {
        ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
        template: { spec: { containers, ...(initContainers.length ? { initContainers } : {}) } },
      },
    },
    contentType: 'application/strategic-merge-patch+json',
  });
}

export function stepSequence(op: OperationState): string[] {
  return op.steps.filter((s) => s.outcome !== 'waiting').map((s) => s.step);
}

// ---- shared scenario assertions ----------------------------------------------------------------

export function headOf(version: string): string {
  const parsed = parseAirflowVersion(version);
  const head = parsed ? headForVersion(parsed) : undefined;
  if (!head) throw new Error(`no schema head for ${version}`);
  return head;
}

export const FULL_SEQUENCE = ['open', 'confirm', 'downgrade', 'verify', 'drain', 'release'];

interface WorkloadShape {
  spec: {
    paused?: boolean;
    replicas?: number;
    suspend?: boolean;
    updateStrategy?: { rollingUpdate?: { partition?: number } };
  };
  metadata: { annotations?: Record<string, string> };
}

export function guardAnnotations(obj: unknown): string[] {
  const annotations = (obj as WorkloadShape | undefined)?.metadata.annotations ?? {};
  return Object.keys(annotations).filter((k) => k.startsWith('airflow-downgrade-guard/'));
}

/** The release's workloads as the spec lists them, with their kind. */
export function releaseWorkloads(
  s: ReleaseSpec,
): Array<{ kind: string; name: string; component: string; replicas: number }> {
  return (s.components ?? DEFAULT_COMPONENTS).map((component) => ({
    kind: s.statefulSets?.includes(component) ? 'StatefulSet' : 'Deployment',
    name: `${s.release}-${component}`,
    component,
    replicas: s.replicas?.[component] ?? 1,
  }));
}

/**
 * The contract of every downgrade scenario: the operation ends `done`, every workload runs the
 * target version with its original replicas and no hold left, the schema is at the target head,
 * and no pod ever ran against a schema its image does not know. Returns the finished operation.
 * `targetHead`: for a target past the built-in table (its image declares it).
 */
export async function expectDowngraded(
  e: E2E<ClusterUnderTest>,
  s: ReleaseSpec,
  target: string,
  targetHead: string = headOf(target),
): Promise<OperationState> {
  const done = await waitFor(
    'operation done',
    () => e.operation(s.namespace, s.release)?.phase === 'done' && e.operation(s.namespace, s.release),
    60_000,
    100,
  );
  await waitFor(`release running ${target}`, () => releaseReady(e.sim, { ...s, version: target }), 60_000, 100);
  expect(await e.revision()).toBe(targetHead);
  // A workload whose update arrived after the operation ended (a sync retrying while the guard
  // restarted) is a late member: the guard restores it moments after `done`. Wait for that, then
  // assert each field (a workload still held fails below with its name).
  await waitFor('every workload released', () => releaseSettled(e, s), 30_000, 100).catch(() => undefined);
  for (const w of releaseWorkloads(s)) {
    const obj = e.workload(w.kind, s.namespace, w.name) as WorkloadShape;
    expect(obj.spec.replicas, `${w.name} replicas`).toBe(w.replicas);
    if (w.kind === 'Deployment') expect(obj.spec.paused ?? false, `${w.name} paused`).toBe(false);
    if (w.kind === 'StatefulSet')
      expect(obj.spec.updateStrategy?.rollingUpdate?.partition ?? 0, `${w.name} partition`).toBe(0);
    expect(guardAnnotations(obj), `${w.name} guard annotations`).toEqual([]);
  }
  if (s.cronJobs !== false) {
    const cron = e.workload('CronJob', s.namespace, `${s.release}-database-cleanup`) as WorkloadShape;
    expect(cron.spec.suspend ?? false).toBe(false);
    expect(guardAnnotations(cron)).toEqual([]);
  }
  await expectNoViolations(e);
  return done;
}

/** Every workload of the release at its replicas, nothing paused, suspended or marked by the guard. */
function releaseSettled(e: E2E<ClusterUnderTest>, s: ReleaseSpec): boolean {
  const settled = (obj: WorkloadShape | undefined, replicas?: number): boolean =>
    obj !== undefined &&
    (replicas === undefined || obj.spec.replicas === replicas) &&
    !(obj.spec.paused ?? false) &&
    !(obj.spec.suspend ?? false) &&
    (obj.spec.updateStrategy?.rollingUpdate?.partition ?? 0) === 0 &&
    guardAnnotations(obj).length === 0;
  return (
    releaseWorkloads(s).every((w) => settled(e.workload(w.kind, s.namespace, w.name) as WorkloadShape, w.replicas)) &&
    (s.cronJobs === false ||
      settled(e.workload('CronJob', s.namespace, `${s.release}-database-cleanup`) as WorkloadShape | undefined))
  );
}

export async function expectNoViolations(e: E2E<ClusterUnderTest>): Promise<void> {
  await e.sim.runtime.sweep();
  expect(e.sim.runtime.violations.list()).toEqual([]);
}

export function eventsOf(
  e: E2E<ClusterUnderTest>,
  namespace: string,
): Array<{ reason: string; message: string; type: string; involvedObject: { kind: string; name: string } }> {
  return e.sim.store.list(RESOURCES.events, namespace).items as never;
}

/**
 * The namespace's Events as "Type Reason", once each of `wanted` ("Type Reason", or a reason alone)
 * is among them. The guard queues its Events instead of writing them with the step that causes them,
 * so an Event may follow the operation record it belongs to by moments.
 */
export function eventsIncluding(
  e: E2E<ClusterUnderTest>,
  namespace: string,
  wanted: string[],
  timeoutMs = 15_000,
): Promise<string[]> {
  return waitFor(
    `Events ${wanted.join(', ')}`,
    () => {
      const seen = eventsOf(e, namespace).map((ev) => `${ev.type} ${ev.reason}`);
      const missing = wanted.filter((w) => !seen.some((s) => s === w || s.endsWith(` ${w}`)));
      if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}; seen ${[...new Set(seen)].join(', ')}`);
      return seen;
    },
    timeoutMs,
    50,
  );
}

/** Resolves (synchronously with the store write) the first time the release's operation satisfies `when`. */
export function whenOperation(
  e: E2E<ClusterUnderTest>,
  namespace: string,
  release: string,
  when: (op: OperationState) => boolean,
  then?: (op: OperationState) => void,
): Promise<OperationState> {
  return new Promise((resolve) => {
    let stop: (() => void) | undefined;
    const check = (): boolean => {
      const op = e.operation(namespace, release);
      if (!op || !when(op)) return false;
      then?.(op);
      stop?.();
      resolve(op);
      return true;
    };
    stop = e.sim.store.watch(RESOURCES.configmaps, namespace, undefined, (event) => {
      if (event.object.metadata.name === operationConfigMapName(release)) check();
    });
    check();
  });
}

/** SIGKILLs a guard (if still running) and starts it again with the same identity and port. */
export async function restartGuard(e: E2E<ClusterUnderTest>, guard: Guard): Promise<Guard> {
  await guard.stop('SIGKILL');
  return e.startGuard(guard.identity, [], { port: guard.port });
}

export function killNow(guard: Guard): void {
  if (guard.process.exitCode === null && guard.process.signalCode === null) guard.process.kill('SIGKILL');
}

/**
 * Calls `then` once, synchronously, when the simulated Airflow starts walking the migrations of an
 * `airflow db downgrade` (the exec is running and holds the migration lock): a kill point that does
 * not depend on how long the migration steps take. Returns what undoes it.
 */
export function onDowngradeWalk(e: E2E<ClusterUnderTest>, then: () => void): () => void {
  const faults = e.sim.runtime.faults;
  const take = faults.take;
  const restore = (): void => {
    faults.take = take;
  };
  faults.take = ((target, kinds) => {
    if ((kinds as readonly string[]).includes('exec-halfway') && target.argv?.join(' ').includes('db downgrade')) {
      restore();
      then();
    }
    return take(target, kinds);
  }) as typeof take;
  return restore;
}

/** The `airflow db downgrade` exec fails once, as on a database deadlock. */
export function failNextDowngrade(e: E2E<ClusterUnderTest>): void {
  e.sim.runtime.faults.add({
    command: 'db downgrade',
    fault: { kind: 'exec-fail', exitCode: 1, message: 'sqlalchemy.exc.OperationalError: deadlock detected' },
    times: 1,
  });
}

export interface PodEvent {
  at: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  name: string;
  image: string;
  ready: boolean;
}

/** Every change of the namespace's pods, with the test process's clock (for timelines). */
export function recordPods(e: E2E<ClusterUnderTest>, namespace: string): { events: PodEvent[]; stop: () => void } {
  const events: PodEvent[] = [];
  const stop = e.sim.store.watch(RESOURCES.pods, namespace, undefined, (event) => {
    const pod = event.object as KubeObject;
    events.push({
      at: Date.now(),
      type: event.type as PodEvent['type'],
      name: pod.metadata.name,
      image: podImage(pod),
      ready: isReady(pod),
    });
  });
  return { events, stop };
}

/** The exec durations the guard logged for an operation's commands (downgrade, roll-forward). */
export function execDurations(guard: Guard, step: 'downgrade' | 'roll-forward' = 'downgrade'): number[] {
  const out: number[] = [];
  for (const line of guard.logs) {
    if (!line.includes(`"step":"${step}"`) || !line.includes('"event":"end"') || !line.includes('"exitCode"')) continue;
    try {
      const parsed = JSON.parse(line) as { durationMs?: number };
      if (typeof parsed.durationMs === 'number') out.push(parsed.durationMs);
    } catch {
      // not a JSON log line
    }
  }
  return out;
}

/**
 * What a failed scenario needs to be understood from a CI log alone: the operation record, each
 * workload's hold-relevant fields, the pods, and the guards' last log lines.
 */
export function describeRelease(e: E2E<ClusterUnderTest>, namespace: string, release: string, logLines = 40): string {
  const out: string[] = [];
  const op = e.operation(namespace, release);
  out.push(
    `operation: ${op ? `${op.id} ${op.phase} steps=${stepSequence(op).join(',')} held=${op.heldReason ?? '-'}` : 'none'}`,
  );
  for (const kind of ['deployments', 'statefulsets', 'cronjobs', 'jobs'] as const) {
    for (const obj of e.sim.store.list(RESOURCES[kind], namespace).items) {
      const spec = obj.spec as WorkloadShape['spec'] & { template?: unknown };
      out.push(
        `${kind} ${obj.metadata.name}: replicas=${spec.replicas ?? '-'} paused=${spec.paused ?? '-'} suspend=${spec.suspend ?? '-'} partition=${spec.updateStrategy?.rollingUpdate?.partition ?? '-'} image=${JSON.stringify(spec.template ?? {}).match(/"image":"([^"]+)"/)?.[1] ?? '-'} guard=${guardAnnotations(obj).join(',') || '-'}`,
      );
    }
  }
  for (const pod of podsOf(e.sim, namespace, release))
    out.push(
      `pod ${pod.metadata.name}: ${podImage(pod)} ready=${isReady(pod)}${pod.metadata.deletionTimestamp ? ' terminating' : ''}`,
    );
  for (const g of e.guards) out.push(`--- guard ${g.identity} (last ${logLines} lines)`, ...g.logs.slice(-logLines));
  return out.join('\n');
}
