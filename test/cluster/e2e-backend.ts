// The end-to-end harness of test/e2e on the real control plane: a watch-fed mirror of the real API
// server's objects (so the scenarios' assertions read them as they read the simulated store) and the
// node agent's simulated Airflow runtime (violations, faults). One real cluster serves a whole test
// file; each scenario gets its own database, and its namespaces and webhook are removed after it.
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll } from 'vitest';
import { KubeRest } from '../../src/k8s/rest.js';
import { WatchCache } from '../../src/k8s/watch-cache.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { Store, StoreError } from '../../testbed/sim/store.js';
import type { KubeObject, ResourceType } from '../../testbed/sim/types.js';
import { createTestDatabase } from '../support/postgres.js';
import {
  GUARD_NAMESPACE,
  startE2EOn,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type E2EOptions,
} from '../e2e/harness.js';
import type { StartE2E } from '../e2e/scenarios/start.js';
import { startRealCluster, type RealCluster } from './cluster.js';

/** The same scaled-down timing as the simulated cluster's end-to-end runs (test/e2e/harness.ts). */
const E2E_TIMING = {
  runtime: { stepDurationMs: 40, checkIntervalMs: 25, readyDelayMs: 30, secondMs: 100, taskDurationMs: 200 },
  node: { podStartDelayMs: 40, readyDelayMs: 40, probeIntervalMs: 25, graceUnitMs: 10 },
};

function startClusterForE2E(log?: (line: string) => void): Promise<RealCluster> {
  return startRealCluster({
    runtime: E2E_TIMING.runtime,
    timing: E2E_TIMING.node,
    ...(log ? { log } : {}),
    ...(process.env.ADG_DEBUG ? { verbose: true } : {}),
  });
}

/**
 * One real cluster for the test file (started before its first test, stopped after its last) and
 * what starts the harness on it: the shared scenarios of test/e2e/scenarios take it.
 */
export function realControlPlane(): { start: StartE2E; cluster(): RealCluster } {
  let running: RealCluster | undefined;
  beforeAll(async () => {
    running = await startClusterForE2E((line) => console.log(line));
    console.log(
      `start-up: build check ${running.timings.buildMs} ms, control plane ${running.timings.controlPlaneMs} ms, node Ready ${running.timings.nodeMs} ms`,
    );
  });
  afterAll(async () => {
    await running?.stop();
  });
  const cluster = (): RealCluster => {
    if (!running) throw new Error('the real control plane is not running: use it inside a test or a hook');
    return running;
  };
  return { start: (options) => startRealE2E(cluster(), options), cluster };
}

const MIRRORED: Array<{ type: ResourceType; path: string }> = [
  { type: RESOURCES.pods, path: '/api/v1/pods' },
  { type: RESOURCES.configmaps, path: '/api/v1/configmaps' },
  { type: RESOURCES.events, path: '/api/v1/events' },
  { type: RESOURCES.deployments, path: '/apis/apps/v1/deployments' },
  { type: RESOURCES.replicasets, path: '/apis/apps/v1/replicasets' },
  { type: RESOURCES.statefulsets, path: '/apis/apps/v1/statefulsets' },
  { type: RESOURCES.jobs, path: '/apis/batch/v1/jobs' },
  { type: RESOURCES.cronjobs, path: '/apis/batch/v1/cronjobs' },
];

/** A Store kept equal to the real API server's objects of the kinds the scenarios read. */
async function mirrorOf(kubeconfig: string): Promise<{ store: Store; stop(): void }> {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const rest = new KubeRest(kc);
  const store = new Store();
  const caches = MIRRORED.map(
    ({ type, path }) =>
      new WatchCache<KubeObject>(kc, rest, {
        name: `mirror ${type.plural}`,
        paths: [path],
        project: (obj) => obj as KubeObject,
        onChange: (_key, record, previous) => {
          if (record) {
            store.mirror(type, record);
            return;
          }
          try {
            if (previous) store.remove(type, previous.metadata.namespace, previous.metadata.name);
          } catch (error) {
            if (!(error instanceof StoreError)) throw error;
          }
        },
      }),
  );
  for (const cache of caches) cache.start();
  const stop = (): void => {
    for (const cache of caches) cache.stop();
    rest.close();
  };
  await waitFor('mirror of the real API server listed', () => caches.every((c) => c.ready), 30_000).catch(
    (error: Error) => {
      stop();
      throw error;
    },
  );
  return { store, stop };
}

/**
 * The harness of test/e2e on `cluster`: same helpers, same assertions. The guard runs on the host
 * under its ServiceAccount's token, registered by URL, in self-managed certificate mode (its own
 * serving certificate with the 127.0.0.1 IP SAN, caBundle injected by the guard).
 */
export async function startRealE2E(cluster: RealCluster, options: E2EOptions = {}): Promise<E2E<ClusterUnderTest>> {
  // These shape the simulated cluster only: the real one runs with E2E_TIMING and its own authorizer.
  const simulatedOnly = (['rbac', 'stepDurationMs', 'podStartDelayMs'] as const).filter(
    (option) => options[option] !== undefined,
  );
  if (simulatedOnly.length)
    throw new Error(`startRealE2E: ${simulatedOnly.join(', ')} only apply to the simulated cluster (startE2E)`);
  const db = await createTestDatabase('cluster');
  const mirror = await mirrorOf(cluster.adminKubeconfig);
  cluster.runtime.violations.clear();
  // The node agent runs the simulated kubelet: pods stuck Terminating as on the simulated cluster.
  cluster.node.stuckTerminating(options.stuckTerminating);
  const kc = new KubeConfig();
  kc.loadFromString(cluster.adminKubeconfig);
  const admin = new KubeRest(kc);
  const before = new Set(
    (await admin.request<{ items: KubeObject[] }>('GET', '/api/v1/namespaces')).items.map((n) => n.metadata.name),
  );
  return startE2EOn(
    {
      cluster: { store: mirror.store, runtime: cluster.runtime },
      adminKubeconfig: cluster.adminKubeconfig,
      serviceAccountKubeconfig: async (namespace, name) =>
        cluster.controlPlane.kubeconfigWithToken(
          await cluster.serviceAccountToken(namespace, name),
          `system:serviceaccount:${namespace}:${name}`,
        ),
      stop: async () => {
        cluster.node.stuckTerminating(undefined);
        // The next scenario starts from a cluster without this one's webhook, releases and guard state.
        await admin
          .request(
            'DELETE',
            '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/airflow-downgrade-guard',
          )
          .catch(() => undefined);
        const now = (await admin.request<{ items: KubeObject[] }>('GET', '/api/v1/namespaces')).items.map(
          (n) => n.metadata.name,
        );
        const created = now.filter((name) => !before.has(name) || name === GUARD_NAMESPACE);
        for (const name of created) await admin.request('DELETE', `/api/v1/namespaces/${name}`).catch(() => undefined);
        await waitFor(
          `namespaces ${created.join(', ')} gone`,
          async () => {
            const left = (await admin.request<{ items: KubeObject[] }>('GET', '/api/v1/namespaces')).items.map(
              (n) => n.metadata.name,
            );
            return created.every((name) => !left.includes(name));
          },
          120_000,
          250,
        );
        mirror.stop();
        admin.close();
      },
    },
    db,
    { certMode: 'self-managed', ...options },
  );
}
