// The whole simulated cluster in one call: store + API server + controllers (kubelet & co.) +
// the simulated Airflow container runtime, wired the way a real cluster's parts are.
import { writeFile } from 'node:fs/promises';
import { startApiServer, type ApiServer, type ApiServerOptions } from './apiserver/index.js';
import { createAirflowRuntime, type AirflowRuntime, type AirflowRuntimeOptions } from './airflow/index.js';
import { startControllers, type ControllerOptions, type Controllers } from './controllers/index.js';
import { startProtobufDecoder } from './apiserver/protobuf.js';
import { RESOURCES } from './resources.js';
import { Store } from './store.js';
import type { ContainerRuntime, ContainerStart, ExecRequest, KubeObject } from './types.js';

export interface SimClusterOptions {
  /** Metadata database for Airflow containers that configure none themselves (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN). */
  databaseUrl?: string;
  /** Scheduling to first container start. */
  podStartDelayMs?: number;
  store?: Store;
  controllers?: Omit<ControllerOptions, 'podStartDelayMs'>;
  runtime?: Omit<AirflowRuntimeOptions, 'resolveSecret'>;
  api?: Omit<ApiServerOptions, 'store' | 'execHandler'>;
  /** Write an admin kubeconfig here once the API server listens. */
  kubeconfigPath?: string;
  /** The testbed/sim/protobuf converter binary: protobuf request bodies are accepted (else 415). */
  protobufConverter?: string;
}

export interface SimCluster {
  store: Store;
  api: ApiServer;
  runtime: AirflowRuntime;
  controllers: Controllers;
  kubeconfigPath?: string;
  stop(): Promise<void>;
}

const CRONJOB_CONTROLLER = {
  user: {
    username: 'system:serviceaccount:kube-system:cronjob-controller',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
  },
  dryRun: false,
  fieldManager: 'kube-controller-manager',
};

const DB_VARIABLES = ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', 'AIRFLOW__CORE__SQL_ALCHEMY_CONN'];

type Container = { name: string; env?: Array<{ name: string }>; envFrom?: unknown[] };

/** Gives containers that name no metadata database the cluster's one. */
function withDefaultDatabase(pod: KubeObject, databaseUrl: string): KubeObject {
  const copy = structuredClone(pod);
  const spec = (copy.spec ?? {}) as { containers?: Container[]; initContainers?: Container[] };
  for (const container of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    const env = (container.env ??= []);
    if (!env.some((e) => DB_VARIABLES.includes(e.name)) && !(container.envFrom ?? []).length) {
      env.push({ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: databaseUrl } as { name: string });
    }
  }
  return copy;
}

export function defaultDatabaseRuntime(runtime: ContainerRuntime, databaseUrl: string | undefined): ContainerRuntime {
  if (!databaseUrl) return runtime;
  return {
    start: (req: ContainerStart) => {
      const pod = withDefaultDatabase(req.pod, databaseUrl);
      const spec = pod.spec as { containers?: Container[]; initContainers?: Container[] };
      const container = [...(spec.containers ?? []), ...(spec.initContainers ?? [])].find(
        (c) => c.name === req.container.name,
      );
      return runtime.start({ ...req, pod, container: (container ?? req.container) as ContainerStart['container'] });
    },
    exec: (req: ExecRequest, io) => runtime.exec({ ...req, pod: withDefaultDatabase(req.pod, databaseUrl) }, io),
  };
}

export async function startSimCluster(options: SimClusterOptions = {}): Promise<SimCluster> {
  const store = options.store ?? new Store();
  const runtime = createAirflowRuntime({
    ...options.runtime,
    resolveSecret: (namespace, name, key) => {
      const secret = store.get(RESOURCES.secrets, namespace, name) as
        (KubeObject & { data?: Record<string, string> }) | undefined;
      const value = secret?.data?.[key];
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    },
  });
  const containers = defaultDatabaseRuntime(runtime, options.databaseUrl);
  let api: ApiServer | undefined;
  let controllers: Controllers | undefined;
  const protobuf = options.protobufConverter ? startProtobufDecoder(options.protobufConverter) : undefined;
  try {
    api = await startApiServer({
      ...options.api,
      store,
      execHandler: containers.exec,
      ...(protobuf ? { protobuf } : {}),
    });
    const registry = api.registry;
    controllers = startControllers(store, containers, {
      // Jobs of CronJobs go through admission (webhooks) as the real controller's creates do.
      admitCreate: async (type, obj) =>
        (await registry.create(CRONJOB_CONTROLLER, type, obj.metadata.namespace, obj)).body,
      ...options.controllers,
      ...(options.podStartDelayMs !== undefined ? { podStartDelayMs: options.podStartDelayMs } : {}),
    });
    if (options.kubeconfigPath) await writeFile(options.kubeconfigPath, api.kubeconfig(), { mode: 0o600 });
  } catch (err) {
    await controllers?.stop();
    await api?.close();
    await protobuf?.close();
    await runtime.close();
    throw err;
  }
  const started = { api, controllers };
  let stopping: Promise<void> | undefined;
  const cluster: SimCluster = {
    store,
    api: started.api,
    runtime,
    controllers: started.controllers,
    stop: () =>
      (stopping ??= (async () => {
        await started.controllers.stop();
        await started.api.close();
        await protobuf?.close();
        await runtime.close();
      })()),
  };
  if (options.kubeconfigPath) cluster.kubeconfigPath = options.kubeconfigPath;
  return cluster;
}
