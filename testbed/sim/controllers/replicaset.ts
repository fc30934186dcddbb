// ReplicaSet controller: keeps spec.replicas active pods from the template and reports status.
import { RESOURCES } from '../resources.js';
import type { KubeObject } from '../types.js';
import {
  asInt,
  asRecord,
  conditionsOf,
  isActive,
  isPodAvailable,
  isPodReady,
  msUntilAvailable,
  omitZero,
  ownedBy,
  podFromTemplate,
  podPhase,
  podTemplateOf,
  specOf,
  splitKey,
  statusOf,
  templateLabels,
  deletePod,
  writeStatus,
  type Json,
} from './common.js';
import type { ControllerContext } from './context.js';
import { WorkQueue } from './queue.js';

/** Most pods created or deleted in one pass, like the real controller's burst limit. */
const BURST = 500;

export class ReplicaSetController {
  readonly queue: WorkQueue;

  constructor(private readonly ctx: ControllerContext) {
    this.queue = new WorkQueue('replicaset', (key) => this.sync(key), ctx.log);
  }

  sync(key: string): void {
    const [namespace, name] = splitKey(key);
    const rs = this.ctx.store.get(RESOURCES.replicasets, namespace, name);
    if (!rs || rs.metadata.deletionTimestamp) return;
    const spec = specOf(rs);
    const desired = Math.max(0, asInt(spec.replicas, 1));
    const found = podTemplateOf(rs);
    if ('error' in found) {
      this.ctx.log.warn({ replicaset: key, error: found.error }, 'skipping ReplicaSet with an unusable template');
      return;
    }
    const pods = ownedBy(this.ctx.store, RESOURCES.pods, rs);
    const active = pods.filter(isActive);
    if (active.length < desired) this.createPods(rs, found.template, Math.min(BURST, desired - active.length));
    if (active.length > desired)
      this.deletePods(rs, rankForDeletion(active).slice(0, Math.min(BURST, active.length - desired)));
    this.updateStatus(rs, found.template);
  }

  private createPods(rs: KubeObject, template: Json, count: number): void {
    for (let i = 0; i < count; i++) {
      const pod = this.ctx.store.create(
        RESOURCES.pods,
        podFromTemplate(template, rs, { generateName: `${rs.metadata.name}-` }),
      );
      this.ctx.events.record(
        rs,
        'Normal',
        'SuccessfulCreate',
        `Created pod: ${pod.metadata.name}`,
        'replicaset-controller',
      );
    }
  }

  private deletePods(rs: KubeObject, victims: KubeObject[]): void {
    for (const pod of victims) {
      deletePod(this.ctx.store, pod, this.ctx.defaultGraceSeconds);
      this.ctx.events.record(
        rs,
        'Normal',
        'SuccessfulDelete',
        `Deleted pod: ${pod.metadata.name}`,
        'replicaset-controller',
      );
    }
  }

  private updateStatus(rs: KubeObject, template: Json): void {
    const minReady = asInt(specOf(rs).minReadySeconds, 0);
    const active = ownedBy(this.ctx.store, RESOURCES.pods, rs).filter(isActive);
    const labels = templateLabels(template);
    const fullyLabeled = active.filter((pod) =>
      Object.entries(labels).every(([k, v]) => pod.metadata.labels?.[k] === v),
    ).length;
    const status: Json = {
      replicas: active.length,
      fullyLabeledReplicas: fullyLabeled,
      readyReplicas: active.filter(isPodReady).length,
      availableReplicas: active.filter((p) => isPodAvailable(p, minReady)).length,
      observedGeneration: rs.metadata.generation ?? 1,
    };
    const conditions = conditionsOf(rs);
    if (conditions.length) status.conditions = conditions;
    omitZero(status, ['fullyLabeledReplicas', 'readyReplicas', 'availableReplicas']);
    writeStatus(this.ctx.store, RESOURCES.replicasets, rs, status);
    // A pod that is ready but not yet minReadySeconds old becomes available later without any event.
    const waits = active.map((p) => msUntilAvailable(p, minReady)).filter((ms): ms is number => ms !== undefined);
    if (waits.length) this.queue.addAfter(`${rs.metadata.namespace}/${rs.metadata.name}`, Math.min(...waits));
  }
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/** Which pods to delete first when scaling down, as the real controller ranks them. */
export function rankForDeletion(pods: KubeObject[]): KubeObject[] {
  const restarts = (pod: KubeObject): number =>
    (Array.isArray(statusOf(pod).containerStatuses) ? (statusOf(pod).containerStatuses as unknown[]) : [])
      .map((c) => asInt(asRecord(c)?.restartCount, 0))
      .reduce((a, b) => a + b, 0);
  return [...pods].sort((a, b) => {
    const assignedA = specOf(a).nodeName ? 1 : 0;
    const assignedB = specOf(b).nodeName ? 1 : 0;
    if (assignedA !== assignedB) return assignedA - assignedB;
    const phaseA = PHASE_RANK[podPhase(a)] ?? 1;
    const phaseB = PHASE_RANK[podPhase(b)] ?? 1;
    if (phaseA !== phaseB) return phaseA - phaseB;
    const readyA = isPodReady(a) ? 1 : 0;
    const readyB = isPodReady(b) ? 1 : 0;
    if (readyA !== readyB) return readyA - readyB;
    if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
    const createdA = Date.parse(a.metadata.creationTimestamp ?? '') || 0;
    const createdB = Date.parse(b.metadata.creationTimestamp ?? '') || 0;
    if (createdA !== createdB) return createdB - createdA;
    return b.metadata.name.localeCompare(a.metadata.name);
  });
}
