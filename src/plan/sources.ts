// The two places `plan` learns what runs now: the live cluster (stored objects, running pods,
// open operations, read like the coordinator's caches) or a release state stated on the command line.
import type { ReleaseState } from '../core/decide.js';
import { WORKLOAD_KINDS, type JsonObject, type WorkloadKind } from '../core/objects.js';
import { isTerminal, operationConfigMapName, readOperationConfigMap } from '../coordinator/operation.js';
import {
  projectPod,
  projectWorkload,
  releaseStateFrom,
  type PodRecord,
  type WorkloadRecord,
} from '../coordinator/release-view.js';
import type { GuardConfig } from '../core/config.js';
import type { Cluster } from '../k8s/cluster.js';
import type { PlanSource } from './evaluate.js';

/** What the flags say; fields left out stay unknown. */
export type StatedState = Pick<ReleaseState, 'runningVersion' | 'dbRevision'>;

/** No cluster: every manifest is a CREATE, the release runs what the flags say, and its workloads are the manifests'. */
export function statedSource(stated: StatedState): PlanSource {
  const parts = [
    stated.runningVersion && `running version ${stated.runningVersion}`,
    stated.dbRevision && `database revision ${stated.dbRevision}`,
  ].filter(Boolean);
  return {
    description: `stated release state (${parts.join(', ') || 'nothing known'}), no cluster`,
    current: async () => undefined,
    releaseState: async (_namespace, _release, workloads) => ({
      ...stated,
      ...(workloads && workloads.length > 0 ? { workloads } : {}),
    }),
  };
}

interface NamespaceView {
  workloads: WorkloadRecord[];
  pods: PodRecord[];
}

/**
 * The live cluster, read the way the webhook's caches see it (same projections, same
 * releaseStateFrom). Stated values, when given, win over what the pods say.
 */
export function clusterSource(
  cluster: Cluster,
  config: GuardConfig,
  description: string,
  stated: StatedState = {},
): PlanSource {
  const views = new Map<string, Promise<NamespaceView>>();
  const view = (namespace: string): Promise<NamespaceView> => {
    let cached = views.get(namespace);
    if (!cached) {
      cached = readNamespace(cluster, config, namespace);
      views.set(namespace, cached);
    }
    return cached;
  };
  return {
    description,
    current: async (kind, namespace, name) => cluster.find<JsonObject>(kind, namespace, name),
    releaseState: async (namespace, release) => {
      const { workloads, pods } = await view(namespace);
      const state = releaseStateFrom(
        namespace,
        release,
        workloads,
        pods,
        await findOpenOperation(cluster, namespace, release),
        undefined,
      );
      return { ...state, ...stated };
    },
  };
}

async function readNamespace(cluster: Cluster, config: GuardConfig, namespace: string): Promise<NamespaceView> {
  const workloads: WorkloadRecord[] = [];
  for (const kind of WORKLOAD_KINDS) {
    const list = await cluster.list(kind, namespace);
    for (const item of list.items) {
      const record = projectWorkload(
        kind as WorkloadKind,
        { ...item, metadata: { namespace, ...(item.metadata as object) } },
        config,
      );
      if (record) workloads.push(record);
    }
  }
  const pods: PodRecord[] = [];
  for (const item of (await cluster.list('Pod', namespace)).items) {
    const record = projectPod({ ...item, metadata: { namespace, ...(item.metadata as object) } }, config);
    if (record) pods.push(record);
  }
  return { workloads, pods };
}

/** The release's operation while it is open (core's openOperation reads the same from admission state). */
async function findOpenOperation(
  cluster: Cluster,
  namespace: string,
  release: string,
): Promise<ReleaseState['operation']> {
  const cm = await cluster.find('ConfigMap', namespace, operationConfigMapName(release));
  try {
    const op = readOperationConfigMap(cm)?.op;
    if (!op) return undefined;
    return isTerminal(op.phase)
      ? undefined
      : { id: op.id, fromVersion: op.fromVersion, toVersion: op.toVersion, phase: op.phase };
  } catch {
    // An unreadable operation is the coordinator's to report; the webhook's cache skips it too.
    return undefined;
  }
}

/** The namespaces in which a release of this name has workloads (for a plan whose namespace is a guess). */
export async function releaseNamespaces(cluster: Cluster, config: GuardConfig, release: string): Promise<string[]> {
  const found = new Set<string>();
  for (const kind of WORKLOAD_KINDS) {
    for (const item of (await cluster.list(kind)).items) {
      const record = projectWorkload(kind, item, config);
      if (record?.release === release) found.add(record.namespace);
    }
  }
  return [...found].sort();
}
