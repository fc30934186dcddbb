// The cluster connection of the CLI commands that read or change the cluster (plan, status, retry,
// abort): kubeconfig from --kubeconfig, else KUBECONFIG / ~/.kube/config / in-cluster, few retries
// so an unreachable cluster is reported quickly in one line.
import { Cluster } from '../k8s/cluster.js';
import { KubeApiError, KubeRest, loadKubeConfig, NoClusterConfigError } from '../k8s/rest.js';

export class ClusterAccessError extends Error {
  override name = 'ClusterAccessError';
}

export interface KubeConnection {
  cluster: Cluster;
  /** API server URL, for messages. */
  server: string;
  context: string;
  /** The kubeconfig's current user name (who operator actions are attributed to by default). */
  user: string;
  /** The current context's namespace, when it names one. */
  namespace?: string;
  close(): void;
}

export function connect(kubeconfig?: string, timeoutMs = 5_000): KubeConnection {
  let kc;
  try {
    kc = loadKubeConfig(kubeconfig);
  } catch (error) {
    if (error instanceof NoClusterConfigError) throw new ClusterAccessError(error.message);
    const where = kubeconfig ?? 'KUBECONFIG, ~/.kube/config or the in-cluster service account';
    throw new ClusterAccessError(`cannot load the Kubernetes configuration from ${where}: ${firstLine(error)}`);
  }
  const rest = new KubeRest(kc, timeoutMs);
  const context = kc.getContextObject(kc.getCurrentContext());
  return {
    cluster: new Cluster(rest, { attempts: 2, baseDelayMs: 100 }),
    server: kc.getCurrentCluster()?.server ?? '(unknown server)',
    context: kc.getCurrentContext(),
    user: kc.getCurrentUser()?.name ?? 'unknown',
    ...(context?.namespace ? { namespace: context.namespace } : {}),
    close: () => rest.close(),
  };
}

/** One line for a failed cluster call: unreachable, forbidden, or what the API server said. */
export function describeClusterError(error: unknown, server: string): string {
  if (error instanceof KubeApiError) {
    if (error.code === 0) return `cannot reach the Kubernetes API at ${server}: ${error.message}`;
    if (error.code === 401 || error.code === 403)
      return `the Kubernetes API at ${server} refused the request: ${error.message}`;
    return `Kubernetes API error at ${server}: ${error.message}`;
  }
  return `cannot talk to the Kubernetes API at ${server}: ${firstLine(error)}`;
}

export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  return message.split('\n')[0] ?? message;
}
