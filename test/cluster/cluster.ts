// The real cluster in one call: the control plane built from Go modules (control-plane.ts) plus our
// node agent (node-agent.ts) running the simulated Airflow containers against a real Postgres.
import { KubeConfig } from '@kubernetes/client-node';
import { KubeRest } from '../../src/k8s/rest.js';
import {
  createAirflowRuntime,
  type AirflowRuntime,
  type AirflowRuntimeOptions,
} from '../../testbed/sim/airflow/index.js';
import { defaultDatabaseRuntime } from '../../testbed/sim/cluster.js';
import { buildControlPlane, kubernetesVersion } from './components.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { startNodeAgent, type NodeAgent, type NodeAgentOptions } from './node-agent.js';

export interface RealClusterOptions {
  /** Metadata database for Airflow containers that configure none themselves. */
  databaseUrl?: string;
  nodeName?: string;
  runtime?: Omit<AirflowRuntimeOptions, 'resolveSecret'>;
  timing?: NodeAgentOptions['timing'];
  log?: (line: string) => void;
  verbose?: boolean;
}

export interface RealCluster {
  controlPlane: ControlPlane;
  node: NodeAgent;
  runtime: AirflowRuntime;
  adminKubeconfig: string;
  /** Start-up figures (ms): build check, control plane ready, node registered and Ready. */
  timings: { buildMs: number; controlPlaneMs: number; nodeMs: number };
  /** A token of a ServiceAccount (TokenRequest API), valid for an hour. */
  serviceAccountToken(namespace: string, name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startRealCluster(options: RealClusterOptions = {}): Promise<RealCluster> {
  const log = options.log ?? (() => undefined);
  const t0 = Date.now();
  const binaries = await buildControlPlane(log);
  const t1 = Date.now();
  const controlPlane = await startControlPlane({ binaries, log, ...(options.verbose ? { verbose: true } : {}) });
  const t2 = Date.now();
  const nodeName = options.nodeName ?? 'node-1';
  const nodeKubeconfig = controlPlane.kubeconfigFor({
    commonName: `system:node:${nodeName}`,
    organizations: ['system:nodes'],
  });
  const nodeConfig = new KubeConfig();
  nodeConfig.loadFromString(nodeKubeconfig);
  const nodeRest = new KubeRest(nodeConfig);
  const admin = new KubeConfig();
  admin.loadFromString(controlPlane.adminKubeconfig);
  const adminRest = new KubeRest(admin);
  const runtime = createAirflowRuntime({
    ...options.runtime,
    ...(options.verbose
      ? {
          log: (line: string, at: { namespace: string; pod: string; container: string }) =>
            log(`[${at.namespace}/${at.pod}/${at.container}] ${line}`),
        }
      : {}),
    // The node reads the Secrets its pods reference, as a kubelet does (Node authorizer).
    resolveSecret: async (namespace, name, key) => {
      const secret = await nodeRest
        .request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/secrets/${name}`)
        .catch((error: { code?: number }) =>
          error.code === 404 || error.code === 403 ? undefined : Promise.reject(error),
        );
      const value = secret?.data?.[key];
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    },
  });
  let node: NodeAgent | undefined;
  try {
    node = await startNodeAgent({
      nodeName,
      kubeconfig: nodeKubeconfig,
      serving: controlPlane.servingCertificate(['127.0.0.1']),
      runtime: defaultDatabaseRuntime(runtime, options.databaseUrl),
      kubernetesVersion: kubernetesVersion(),
      ...(options.timing ? { timing: options.timing } : {}),
      log,
    });
    await waitForNodeReady(adminRest, nodeName);
  } catch (error) {
    await node?.stop();
    await runtime.close();
    nodeRest.close();
    adminRest.close();
    await controlPlane.stop();
    throw error;
  }
  const t3 = Date.now();
  const started = node;
  let stopping: Promise<void> | undefined;
  return {
    controlPlane,
    node: started,
    runtime,
    adminKubeconfig: controlPlane.adminKubeconfig,
    timings: { buildMs: t1 - t0, controlPlaneMs: t2 - t1, nodeMs: t3 - t2 },
    async serviceAccountToken(namespace, name) {
      const answer = await adminRest.request<{ status: { token: string } }>(
        'POST',
        `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
        {
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
        },
      );
      return answer.status.token;
    },
    stop: () =>
      (stopping ??= (async () => {
        await started.stop();
        await runtime.close();
        nodeRest.close();
        adminRest.close();
        await controlPlane.stop();
      })()),
  };
}

/** The node is Ready and the scheduler may use it: no taint left from before its first status. */
async function waitForNodeReady(rest: KubeRest, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const node = await rest.request<{
      spec?: { taints?: Array<{ key: string }> };
      status?: { conditions?: Array<{ type: string; status: string }> };
    }>('GET', `/api/v1/nodes/${name}`);
    const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (ready && !(node.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'))) return;
    if (Date.now() > deadline)
      throw new Error(
        `node ${name} not Ready and untainted within ${timeoutMs} ms: ${JSON.stringify(node.spec?.taints ?? [])}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
