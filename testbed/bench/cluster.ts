// The benchmark's simulated cluster: certificates, the guard's ServiceAccount kubeconfig, the
// webhook registration, and releases written straight into the store (fast) or through the API.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateCertificates } from '../../src/certs/generate.js';
import { renderInstallManifests } from '../../src/install/manifests.js';
import { startSimCluster, type SimCluster, type SimClusterOptions } from '../sim/cluster.js';
import { RESOURCES } from '../sim/resources.js';
import type { KubeObject } from '../sim/types.js';
import { releaseWorkloads } from './fixtures.js';
import { GUARD_NAMESPACE, type Tls } from './processes.js';

export function makeTls(dir: string): Tls {
  const certs = generateCertificates({
    service: 'airflow-downgrade-guard',
    namespace: GUARD_NAMESPACE,
    dnsNames: ['127.0.0.1', 'localhost'],
  });
  const tls: Tls = {
    dir,
    certFile: path.join(dir, 'tls.crt'),
    keyFile: path.join(dir, 'tls.key'),
    caFile: path.join(dir, 'ca.crt'),
    caPem: certs.caCert,
  };
  writeFileSync(tls.certFile, certs.cert);
  writeFileSync(tls.keyFile, certs.key, { mode: 0o600 });
  writeFileSync(tls.caFile, certs.caCert);
  return tls;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface BenchCluster {
  sim: SimCluster;
  /** kubeconfig of the guard's ServiceAccount (its own identity, trusted by its own webhook). */
  guardKubeconfig: string;
  stop(): Promise<void>;
}

export async function startBenchCluster(dir: string, options: SimClusterOptions = {}): Promise<BenchCluster> {
  const sim = await startSimCluster(options);
  const token = sim.api.tokens.issueServiceAccountToken(GUARD_NAMESPACE, 'airflow-downgrade-guard');
  const guardKubeconfig = path.join(dir, 'guard-kubeconfig');
  writeFileSync(guardKubeconfig, sim.api.kubeconfig(token), { mode: 0o600 });
  ensureNamespace(sim, GUARD_NAMESPACE);
  return { sim, guardKubeconfig, stop: () => sim.stop() };
}

export function ensureNamespace(sim: SimCluster, name: string): void {
  if (sim.store.get(RESOURCES.namespaces, undefined, name)) return;
  sim.store.create(RESOURCES.namespaces, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
  });
}

/** The install's MutatingWebhookConfiguration, pointed at the guard's local URL. */
export function registerWebhook(sim: SimCluster, url: string, caPem: string): void {
  const install = renderInstallManifests({
    namespace: GUARD_NAMESPACE,
    watchNamespaces: [],
    certMode: 'files',
  } as never) as unknown as KubeObject[];
  const config = structuredClone(install.find((o) => o.kind === 'MutatingWebhookConfiguration')) as KubeObject & {
    webhooks: Array<Record<string, unknown>>;
  };
  for (const hook of config.webhooks)
    hook.clientConfig = { url: `${url}/mutate`, caBundle: Buffer.from(caPem).toString('base64') };
  delete (config.metadata as { annotations?: unknown }).annotations;
  sim.store.create(RESOURCES.mutatingwebhookconfigurations, config);
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
