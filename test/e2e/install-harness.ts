// End-to-end harness for the install as shipped: the objects `kubectl kustomize deploy/…` (or the
// `manifests` command) renders are applied to the simulated API server as they are; RBAC is
// enforced from the stored Roles/Bindings; the webhook is reached through its Service (mapped by
// the API server's webhookServiceResolver onto the live guard replicas, round-robin); each guard
// runs `serve` with the environment of the rendered Deployment, its ServiceAccount token and
// self-managed certificates (it creates its TLS Secret and injects the caBundle itself).
import { findKubectl } from '../testbed/sim/support.js';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { parseOperation, leaseName, operationConfigMapName } from '../../src/coordinator/operation.js';
import { readAlembicRevision } from '../../src/db/alembic.js';
import { GUARD_NAME, TLS_SECRET_NAME } from '../../src/install/names.js';
import type { Manifest } from '../../src/install/manifests.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { chartComponent, chartWorkload } from '../../testbed/sim/chart.js';
import { startSimCluster } from '../../testbed/sim/cluster.js';
import {
  createRbacAuthorizer,
  rbacObjectsFrom,
  serviceAccountIdentity,
  type RbacAuthorizer,
} from '../../testbed/sim/rbac/authorizer.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { stopOwned } from '../support/processes.js';
import { simProtobufConverter } from '../../testbed/sim/protobuf-converter.js';
import {
  DEFAULT_COMPONENTS,
  ROOT,
  jobComplete,
  migrationJob,
  releaseReady,
  spawnGuard,
  waitFor,
  type E2E,
  type Guard,
  type ReleaseSpec,
} from './harness.js';

export const DEPLOY_DIR = path.join(ROOT, 'deploy');

/** `kubectl kustomize deploy/<dir>`, parsed. */
export function kustomize(dir: string): Manifest[] {
  const out = execFileSync(findKubectl(), ['kustomize', path.join(DEPLOY_DIR, dir)], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return parseAllDocuments(out).map((d) => d.toJS() as Manifest);
}

/** `airflow-downgrade-guard manifests <args>` (the built CLI), parsed. */
export function manifestsCommand(args: string[]): Manifest[] {
  const out = execFileSync(
    process.execPath,
    [path.join(ROOT, 'bin/airflow-downgrade-guard.js'), 'manifests', ...args],
    { encoding: 'utf8', timeout: 30_000 },
  );
  return parseAllDocuments(out).map((d) => d.toJS() as Manifest);
}

export interface InstalledE2EOptions {
  stepDurationMs?: number;
  podStartDelayMs?: number;
  /** Passed to every guard after the Deployment's own args; the lease is 3 s here to keep HA tests short. */
  guardArgs?: string[];
  /**
   * Installs the guard's objects instead of creating `manifests` one by one (e.g. `helm install` of
   * deploy/chart, whose `helm template` output is then passed as `manifests`); gets an admin kubeconfig.
   */
  install?: (adminKubeconfig: string) => Promise<void>;
}

export interface InstalledE2E extends E2E {
  rbac: RbacAuthorizer;
  manifests: Manifest[];
  /** The namespace the install put the guard in. */
  guardNamespace: string;
  /** The identity the API server gives the guard's ServiceAccount token. */
  guardIdentity: { user: string; groups: string[] };
  /** Admission calls the API server sent to each guard (by identity), through the Service. */
  webhookCalls: Map<string, number>;
  leaseHolder(namespace: string, release: string): string | undefined;
  /** Installs a release on its own metadata database (dropped at stop); returns that database's URL. */
  installReleaseOnOwnDatabase(spec: ReleaseSpec): Promise<string>;
  /** Grants of the installed RBAC that no request of the guard used, one line each. */
  unusedGrants(): string[];
}

// downgrade-first unless options.guardArgs says otherwise: the order the HA scenarios were written for.
const GUARD_ARGS = ['--host', '127.0.0.1', '--lease-duration-seconds', '3', '--order', 'downgrade-first'];

function restFor(kubeconfig: string): Cluster {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return new Cluster(new KubeRest(kc), { attempts: 3, baseDelayMs: 50 });
}

function pluralOf(obj: Manifest): string {
  const type = Object.values(RESOURCES).find(
    (t) => t.kind === obj.kind && (t.group ? `${t.group}/${t.version}` : t.version) === obj.apiVersion,
  );
  if (!type) throw new Error(`the simulated API server serves no ${obj.apiVersion} ${obj.kind}`);
  return type.plural;
}

/** POST as `kubectl apply` would create it; an existing object (409) is left as it is. */
export async function createObject(admin: Cluster, obj: Manifest | KubeObject): Promise<void> {
  const prefix = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const ns = obj.metadata.namespace;
  try {
    await admin.rest.request('POST', `${prefix}${ns ? `/namespaces/${ns}` : ''}/${pluralOf(obj as Manifest)}`, {
      body: obj,
    });
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error;
  }
}

async function createNamespace(admin: Cluster, name: string): Promise<void> {
  await createObject(admin, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
  });
}

type Container = { args?: string[]; env?: Array<{ name: string; value?: string; valueFrom?: Record<string, any> }> };

function guardContainer(manifests: Manifest[]): { namespace: string; container: Container } {
  const deployment = manifests.find((o) => o.kind === 'Deployment' && o.metadata.name === GUARD_NAME) as
    (Manifest & { spec: { template: { spec: { containers: Container[] } } } }) | undefined;
  const container = deployment?.spec.template.spec.containers[0];
  if (!deployment || !container) throw new Error('the install has no guard Deployment');
  return { namespace: deployment.metadata.namespace!, container };
}

/**
 * The container's environment as the kubelet would resolve it for pod `podName`: downward API
 * fields, Secret keys (optional ones skipped when absent) and literal values.
 */
function resolveEnv(
  sim: InstalledE2E['sim'],
  namespace: string,
  podName: string,
  container: Container,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const field = e.valueFrom?.fieldRef?.fieldPath as string | undefined;
    if (field === 'metadata.namespace') env[e.name] = namespace;
    else if (field === 'metadata.name') env[e.name] = podName;
    else if (field !== undefined) throw new Error(`env ${e.name}: unsupported fieldRef ${field}`);
    const secretRef = e.valueFrom?.secretKeyRef as { name: string; key: string; optional?: boolean } | undefined;
    if (secretRef) {
      const secret = sim.store.get(RESOURCES.secrets, namespace, secretRef.name) as
        (KubeObject & { data?: Record<string, string> }) | undefined;
      const value = secret?.data?.[secretRef.key];
      if (value !== undefined) env[e.name] = Buffer.from(value, 'base64').toString('utf8');
      else if (!secretRef.optional)
        throw new Error(`env ${e.name}: Secret ${namespace}/${secretRef.name} key ${secretRef.key} missing`);
    }
  }
  return env;
}

/** The test runner's environment without anything that would configure the guard behind the manifests' back. */
function baseEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k, v]) => v !== undefined && !k.startsWith('ADG_') && !k.startsWith('POD_') && k !== 'KUBECONFIG',
    ),
  ) as Record<string, string>;
}

export async function startInstalledE2E(
  manifests: Manifest[],
  options: InstalledE2EOptions = {},
): Promise<InstalledE2E> {
  const db = await createTestDatabase('e2e-install');
  const extraDatabases: TestDatabase[] = [];
  const { namespace: guardNamespace, container } = guardContainer(manifests);
  const guardIdentity = serviceAccountIdentity(guardNamespace, GUARD_NAME);
  const guards: Guard[] = [];
  const ready = new Set<Guard>();
  const webhookCalls = new Map<string, number>();
  let nextEndpoint = 0;
  let simRef: InstalledE2E['sim'] | undefined;

  const rbac = createRbacAuthorizer(() =>
    rbacObjectsFrom(
      simRef
        ? [RESOURCES.roles, RESOURCES.rolebindings, RESOURCES.clusterroles, RESOURCES.clusterrolebindings].flatMap(
            (t) => simRef!.store.list(t).items,
          )
        : [],
    ),
  );
  // The guard's Service and its endpoints: every replica that is serving, round-robin, as
  // kube-proxy spreads connections over a Service's ready endpoints.
  const resolveService = (namespace: string, name: string): { host: string; port: number } | undefined => {
    if (!simRef?.store.get(RESOURCES.services, namespace, name)) return undefined;
    if (namespace !== guardNamespace || name !== GUARD_NAME) return undefined;
    const endpoints = guards.filter(
      (g) => ready.has(g) && g.process.exitCode === null && g.process.signalCode === null,
    );
    if (endpoints.length === 0) return undefined;
    const guard = endpoints[nextEndpoint++ % endpoints.length]!;
    webhookCalls.set(guard.identity, (webhookCalls.get(guard.identity) ?? 0) + 1);
    return { host: '127.0.0.1', port: guard.port };
  };

  const sim = await startSimCluster({
    databaseUrl: db.url,
    podStartDelayMs: options.podStartDelayMs ?? 40,
    controllers: { readyDelayMs: 40, probeIntervalMs: 25, graceUnitMs: 10 },
    runtime: {
      stepDurationMs: options.stepDurationMs ?? 40,
      checkIntervalMs: 25,
      readyDelayMs: 30,
      secondMs: 100,
      taskDurationMs: 200,
    },
    api: { authorize: (req) => rbac.authorize(req), webhookServiceResolver: resolveService },
    protobufConverter: simProtobufConverter(),
  });
  simRef = sim;
  const admin = restFor(sim.api.kubeconfig());

  // Namespaced objects of the install that live outside it (Roles in Airflow namespaces) need their
  // namespace first, as `kubectl apply` would.
  const installed = new Set(manifests.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
  for (const ns of new Set(
    manifests.map((o) => o.metadata.namespace).filter((n): n is string => n !== undefined && !installed.has(n)),
  )) {
    await createNamespace(admin, ns);
  }
  if (options.install) await options.install(sim.api.kubeconfig());
  else for (const obj of manifests) await createObject(admin, obj);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'adg-install-e2e-'));
  // Every guard process from its spawn on (also one still starting when the test ends).
  const children = new Set<ChildProcess>();
  let stopped = false;
  const kubeconfigFile = path.join(dir, 'guard-kubeconfig');
  writeFileSync(
    kubeconfigFile,
    sim.api.kubeconfig(sim.api.tokens.issueServiceAccountToken(guardNamespace, GUARD_NAME), guardNamespace),
    { mode: 0o600 },
  );

  const e2e: InstalledE2E = {
    sim,
    db,
    admin,
    guards,
    rbac,
    manifests,
    guardNamespace,
    guardIdentity,
    webhookCalls,
    adminKubeconfig: sim.api.kubeconfig(),
    get caPem(): string {
      const secret = sim.store.get(RESOURCES.secrets, guardNamespace, TLS_SECRET_NAME) as
        (KubeObject & { data?: Record<string, string> }) | undefined;
      const ca = secret?.data?.['ca.crt'];
      return ca ? Buffer.from(ca, 'base64').toString('utf8') : '';
    },
    async startGuard(identity = `${GUARD_NAME}-${guards.length + 1}`, extraArgs = []) {
      // What the kubelet would give the container; only the port differs (replicas share one host
      // here: each binds port 0 and logs the one it got) and KUBECONFIG stands in for the mounted
      // ServiceAccount token.
      const port = 0;
      // Each replica's /tmp is its own emptyDir: a guard killed with SIGKILL leaves its files there,
      // and they go with the test's directory.
      const podTmp = path.join(dir, `tmp-${identity}-${children.size}`);
      mkdirSync(podTmp);
      const env = {
        ...baseEnv(),
        ...resolveEnv(sim, guardNamespace, identity, container),
        ADG_PORT: String(port),
        KUBECONFIG: kubeconfigFile,
        TMPDIR: podTmp,
      };
      const args = [
        path.join(ROOT, 'dist/src/cli/main.js'),
        ...(container.args ?? []),
        ...GUARD_ARGS,
        ...(options.guardArgs ?? []),
        ...extraArgs,
      ];
      const guard: Guard = await spawnGuard(
        identity,
        args,
        env,
        () => ready.delete(guard),
        (child) => children.add(child),
      );
      if (stopped) {
        await guard.stop('SIGKILL');
        throw new Error(`guard ${identity} started after the test environment stopped`);
      }
      guards.push(guard);
      ready.add(guard);
      return guard;
    },
    async installRelease(spec) {
      await installRelease(e2e, spec, db.url);
    },
    async installReleaseOnOwnDatabase(spec) {
      const own = await createTestDatabase(`e2e-install-${spec.release}`);
      extraDatabases.push(own);
      await installRelease(e2e, spec, own.url);
      return own.url;
    },
    workload(kind, namespace, name) {
      const type = Object.values(RESOURCES).find((t) => t.kind === kind && t.namespaced);
      if (!type) throw new Error(`unknown kind ${kind}`);
      return sim.store.get(type, namespace, name);
    },
    operation(namespace, release) {
      const cm = sim.store.get(RESOURCES.configmaps, namespace, operationConfigMapName(release)) as
        (KubeObject & { data?: Record<string, string> }) | undefined;
      const text = cm?.data?.['operation.json'];
      return text ? parseOperation(text) : undefined;
    },
    leaseHolder(namespace, release) {
      const lease = sim.store.get(RESOURCES.leases, namespace, leaseName(release)) as
        (KubeObject & { spec?: { holderIdentity?: string } }) | undefined;
      return lease?.spec?.holderIdentity;
    },
    unusedGrants() {
      return rbac
        .unusedGrants(guardIdentity)
        .map(
          (g) =>
            `${g.verb} ${g.apiGroup || 'core'}/${g.resource}${g.resourceNames ? ` [${g.resourceNames.join(',')}]` : ''} (${g.role})`,
        );
    },
    async revision() {
      return (await readAlembicRevision(db.url)).revision;
    },
    async stop() {
      stopped = true;
      await Promise.all([...children].map((child) => stopOwned(child, 'SIGKILL')));
      await sim.stop();
      await Promise.all([db, ...extraDatabases].map((d) => d.drop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return e2e;
}

/** A fresh Helm install of the official chart at spec.version, through the installed webhook. */
async function installRelease(e2e: E2E, spec: ReleaseSpec, databaseUrl: string): Promise<void> {
  await createNamespace(e2e.admin, spec.namespace);
  await createObject(e2e.admin, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${spec.release}-metadata`, namespace: spec.namespace },
    type: 'Opaque',
    data: { connection: Buffer.from(databaseUrl).toString('base64') },
  } as KubeObject);
  const migrate = migrationJob(spec);
  await createObject(e2e.admin, migrate);
  await waitFor('migration job complete', () => jobComplete(e2e.sim, spec.namespace, migrate.metadata.name), 30_000);
  await e2e.admin.delete('Job', spec.namespace, migrate.metadata.name, 0);
  for (const component of spec.components ?? DEFAULT_COMPONENTS) {
    const kind = spec.statefulSets?.includes(component) ? 'StatefulSet' : 'Deployment';
    const obj = chartComponent({
      kind,
      component,
      release: spec.release,
      namespace: spec.namespace,
      version: spec.version,
      replicas: spec.replicas?.[component] ?? 1,
    });
    await createObject(e2e.admin, obj as KubeObject);
  }
  if (spec.cronJobs !== false) {
    await createObject(
      e2e.admin,
      chartWorkload({
        kind: 'CronJob',
        component: 'database-cleanup',
        release: spec.release,
        namespace: spec.namespace,
        version: spec.version,
      }) as KubeObject,
    );
  }
  await waitFor('release pods ready', () => releaseReady(e2e.sim, spec), 30_000);
}
