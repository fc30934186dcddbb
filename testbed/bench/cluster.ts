// Releases of the benchmark's simulated cluster (started by the testbed starter, testbed/start.ts)
// written straight into the store (fast).
import type { SimCluster } from '../sim/cluster.js';
import { RESOURCES } from '../sim/resources.js';
import type { KubeObject } from '../sim/types.js';
import { releaseWorkloads } from './fixtures.js';

export function ensureNamespace(sim: SimCluster, name: string): void {
  if (sim.store.get(RESOURCES.namespaces, undefined, name)) return;
  sim.store.create(RESOURCES.namespaces, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
  });
}

const TYPES: Record<string, (typeof RESOURCES)[keyof typeof RESOURCES]> = {
  Deployment: RESOURCES.deployments,
  StatefulSet: RESOURCES.statefulsets,
  Job: RESOURCES.jobs,
  CronJob: RESOURCES.cronjobs,
};

export function createInStore(sim: SimCluster, obj: Record<string, unknown>): KubeObject {
  const o = obj as unknown as KubeObject;
  const type =
    TYPES[o.kind] ?? (o.kind === 'Secret' ? RESOURCES.secrets : o.kind === 'Pod' ? RESOURCES.pods : undefined);
  if (!type) throw new Error(`no store type for ${o.kind}`);
  return sim.store.create(type, o);
}

/** A Running, Ready pod of a Deployment, as the kubelet would report it (for store-only releases). */
function runningPod(deployment: KubeObject, index: number): KubeObject {
  const template = (
    deployment.spec as { template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } }
  ).template;
  const now = new Date().toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${deployment.metadata.name}-5d8f7c9b4-${String(index).padStart(5, 'x')}`,
      namespace: deployment.metadata.namespace,
      labels: { ...template.metadata.labels, 'pod-template-hash': '5d8f7c9b4' },
    },
    spec: { ...structuredClone(template.spec), nodeName: 'sim-node-1' },
    status: {
      phase: 'Running',
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'Ready', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      ],
      podIP: '10.0.0.1',
      startTime: now,
    },
  } as KubeObject;
}

/** A release as the store holds it once running: 6 Deployments with one Ready pod each, a CronJob and the metadata Secret. */
export function seedRelease(
  sim: SimCluster,
  namespace: string,
  release: string,
  version: string,
  databaseUrl = 'postgresql://airflow:airflow@127.0.0.1:5432/airflow',
): void {
  ensureNamespace(sim, namespace);
  createInStore(sim, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${release}-metadata`, namespace },
    type: 'Opaque',
    data: { connection: Buffer.from(databaseUrl).toString('base64') },
  });
  for (const obj of releaseWorkloads(release, namespace, version)) {
    const stored = createInStore(sim, obj);
    if (stored.kind === 'Deployment') createInStore(sim, runningPod(stored, 0) as unknown as Record<string, unknown>);
  }
}
