// Reads one snapshot of a release for `wait`: its operation record and its workloads, decoded by
// the coordinator's and the core's own readers (parseOperation, projectWorkload).
import {
  OPERATION_DATA_KEY,
  OperationStateError,
  operationConfigMapName,
  parseOperation,
} from '../coordinator/operation.js';
import { projectWorkload } from '../coordinator/release-view.js';
import type { GuardConfig } from '../core/config.js';
import { valueAt, WORKLOAD_KINDS, type JsonObject } from '../core/objects.js';
import type { Cluster } from '../k8s/cluster.js';
import type { ReleaseSnapshot, WorkloadSnapshot } from './verdict.js';

export async function readReleaseSnapshot(
  cluster: Cluster,
  namespace: string,
  release: string,
  config: GuardConfig,
): Promise<ReleaseSnapshot> {
  const [record, ...lists] = await Promise.all([
    cluster.find('ConfigMap', namespace, operationConfigMapName(release)),
    ...WORKLOAD_KINDS.map((kind) => cluster.list(kind, namespace).then((list) => ({ kind, items: list.items }))),
  ]);
  const workloads: WorkloadSnapshot[] = [];
  for (const { kind, items } of lists as Array<{ kind: WorkloadSnapshot['kind']; items: JsonObject[] }>) {
    for (const object of items) {
      const projected = projectWorkload(kind, object, config);
      if (projected?.release === release) workloads.push({ kind, name: projected.name, object });
    }
  }
  const snapshot: ReleaseSnapshot = { namespace, release, workloads };
  const text = record === undefined ? undefined : valueAt(record, ['data', OPERATION_DATA_KEY]);
  if (typeof text === 'string') {
    try {
      snapshot.operation = parseOperation(text);
    } catch (error) {
      if (!(error instanceof OperationStateError)) throw error;
      snapshot.operationProblem = error.message;
    }
  } else if (record !== undefined) {
    snapshot.operationProblem = `ConfigMap ${operationConfigMapName(release)} has no ${OPERATION_DATA_KEY}`;
  }
  return snapshot;
}
