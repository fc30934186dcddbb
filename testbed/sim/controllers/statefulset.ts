// StatefulSet controller: ordinal pods `<name>-0..N-1`, OrderedReady or Parallel management,
// ControllerRevisions named `<name>-<hash>` (the `controller-revision-hash` pod label),
// RollingUpdate from the highest ordinal down to `partition`, and OnDelete.
import { RESOURCES } from '../resources.js';
import type { KubeObject } from '../types.js';
import {
  asInt,
  asRecord,
  asString,
  computeHash,
  deletePod,
  isPodAvailable,
  isPodReady,
  isTerminal,
  isTerminating,
  msUntilAvailable,
  omitZero,
  ownedBy,
  ownerReference,
  podFromTemplate,
  podTemplateOf,
  specOf,
  splitKey,
  statusOf,
  writeStatus,
  type Json,
} from './common.js';
import type { ControllerContext } from './context.js';
import { WorkQueue } from './queue.js';

export const REVISION_LABEL = 'controller-revision-hash';

interface Revision {
  name: string;
  template: Json;
}

export class StatefulSetController {
  readonly queue: WorkQueue;

  constructor(private readonly ctx: ControllerContext) {
    this.queue = new WorkQueue('statefulset', (key) => this.sync(key), ctx.log);
  }

  sync(key: string): void {
    const [namespace, name] = splitKey(key);
    const sts = this.ctx.store.get(RESOURCES.statefulsets, namespace, name);
    if (!sts || sts.metadata.deletionTimestamp) return;
    const found = podTemplateOf(sts);
    if ('error' in found) {
      this.ctx.log.warn({ statefulset: key, error: found.error }, 'skipping StatefulSet with an unusable template');
      return;
    }
    const update = this.ensureRevision(sts, found.template);
    const current = this.currentRevision(sts, update);
    const pods = this.podsByOrdinal(sts);
    this.reconcilePods(sts, pods, current, update);
    this.updateStatus(sts, current, update);
  }

  private ensureRevision(sts: KubeObject, template: Json): Revision {
    const name = `${sts.metadata.name}-${computeHash(template)}`;
    const existing = this.ctx.store.get(RESOURCES.controllerrevisions, sts.metadata.namespace, name);
    if (!existing) {
      const revisions = ownedBy(this.ctx.store, RESOURCES.controllerrevisions, sts);
      const next = Math.max(0, ...revisions.map((r) => asInt(r.revision, 0))) + 1;
      this.ctx.store.create(RESOURCES.controllerrevisions, {
        apiVersion: 'apps/v1',
        kind: 'ControllerRevision',
        metadata: {
          name,
          namespace: sts.metadata.namespace,
          labels: {
            ...(asRecord(asRecord(specOf(sts).selector)?.matchLabels) as Record<string, string> | undefined),
            [REVISION_LABEL]: name.slice(sts.metadata.name.length + 1),
          },
          ownerReferences: [ownerReference(sts)],
        },
        data: { spec: { template: structuredClone(template) } },
        revision: next,
      });
    }
    return { name, template };
  }

  private currentRevision(sts: KubeObject, update: Revision): Revision {
    const name = asString(statusOf(sts).currentRevision);
    if (!name || name === update.name) return update;
    const rev = this.ctx.store.get(RESOURCES.controllerrevisions, sts.metadata.namespace, name);
    const template = asRecord(asRecord(asRecord(rev?.data)?.spec)?.template);
    return template ? { name, template } : update;
  }

  private podsByOrdinal(sts: KubeObject): Map<number, KubeObject> {
    const pattern = new RegExp(`^${sts.metadata.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`);
    const byOrdinal = new Map<number, KubeObject>();
    for (const pod of ownedBy(this.ctx.store, RESOURCES.pods, sts)) {
      const match = pattern.exec(pod.metadata.name);
      if (match) byOrdinal.set(Number(match[1]), pod);
    }
    return byOrdinal;
  }

  private reconcilePods(sts: KubeObject, pods: Map<number, KubeObject>, current: Revision, update: Revision): void {
    const spec = specOf(sts);
    const replicas = Math.max(0, asInt(spec.replicas, 1));
    const ordered = spec.podManagementPolicy !== 'Parallel';
    const strategy = asRecord(spec.updateStrategy);
    const rolling = (asString(strategy?.type) ?? 'RollingUpdate') === 'RollingUpdate';
    const partition = Math.max(0, asInt(asRecord(strategy?.rollingUpdate)?.partition, 0));
    const healthy = (pod: KubeObject): boolean => isPodReady(pod) && !isTerminating(pod);

    // Create missing pods and replace finished ones; OrderedReady waits for each to be Ready.
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const pod = pods.get(ordinal);
      if (!pod) {
        const rev = rolling && ordinal < partition ? current : update;
        this.createPod(sts, ordinal, rev);
        if (ordered) return;
        continue;
      }
      if (isTerminal(pod) && !isTerminating(pod)) {
        this.deletePod(sts, pod);
        if (ordered) return;
        continue;
      }
      if (ordered && !healthy(pod)) return;
    }
    // Scale down from the highest ordinal; OrderedReady one at a time.
    const condemned = [...pods.keys()].filter((o) => o >= replicas).sort((a, b) => b - a);
    for (const ordinal of condemned) {
      const pod = pods.get(ordinal);
      if (!pod) continue;
      if (!isTerminating(pod)) this.deletePod(sts, pod);
      if (ordered) return;
    }
    if (!rolling) return; // OnDelete: pods take the new revision only when recreated.
    // Updates go from the highest ordinal down to the partition, one pod at a time.
    for (let ordinal = replicas - 1; ordinal >= partition; ordinal--) {
      const pod = pods.get(ordinal);
      if (!pod) return;
      if (pod.metadata.labels?.[REVISION_LABEL] !== update.name) {
        if (!isTerminating(pod)) this.deletePod(sts, pod);
        return;
      }
      if (!healthy(pod)) return;
    }
  }

  private createPod(sts: KubeObject, ordinal: number, rev: Revision): void {
    const podName = `${sts.metadata.name}-${ordinal}`;
    const pod = podFromTemplate(
      rev.template,
      sts,
      { name: podName },
      {
        [REVISION_LABEL]: rev.name,
        'statefulset.kubernetes.io/pod-name': podName,
        'apps.kubernetes.io/pod-index': String(ordinal),
      },
    );
    const podSpec = pod.spec as Json;
    podSpec.hostname = podName;
    const serviceName = asString(specOf(sts).serviceName);
    if (serviceName) podSpec.subdomain = serviceName;
    try {
      this.ctx.store.create(RESOURCES.pods, pod);
    } catch (err) {
      // The previous pod of this ordinal may still be on its way out.
      this.ctx.log.debug({ pod: podName, err: String(err) }, 'statefulset pod not created yet');
      return;
    }
    this.ctx.events.record(
      sts,
      'Normal',
      'SuccessfulCreate',
      `create Pod ${podName} in StatefulSet ${sts.metadata.name} successful`,
      'statefulset-controller',
    );
  }

  private deletePod(sts: KubeObject, pod: KubeObject): void {
    deletePod(this.ctx.store, pod, this.ctx.defaultGraceSeconds);
    this.ctx.events.record(
      sts,
      'Normal',
      'SuccessfulDelete',
      `delete Pod ${pod.metadata.name} in StatefulSet ${sts.metadata.name} successful`,
      'statefulset-controller',
    );
  }

  private updateStatus(sts: KubeObject, current: Revision, update: Revision): void {
    const fresh = this.ctx.store.get(RESOURCES.statefulsets, sts.metadata.namespace, sts.metadata.name);
    if (!fresh || fresh.metadata.uid !== sts.metadata.uid) return;
    const spec = specOf(fresh);
    const minReady = asInt(spec.minReadySeconds, 0);
    const pods = [...this.podsByOrdinal(fresh).values()];
    const live = pods.filter((p) => !isTerminating(p));
    const status: Json = {
      observedGeneration: fresh.metadata.generation ?? 1,
      replicas: pods.length,
      readyReplicas: pods.filter(isPodReady).length,
      currentReplicas: live.filter((p) => p.metadata.labels?.[REVISION_LABEL] === current.name).length,
      updatedReplicas: live.filter((p) => p.metadata.labels?.[REVISION_LABEL] === update.name).length,
      currentRevision: current.name,
      updateRevision: update.name,
      collisionCount: 0,
      availableReplicas: pods.filter((p) => isPodAvailable(p, minReady)).length,
    };
    // As the real controller's completeRollingUpdate: once every pod runs the update revision, it becomes current.
    const rolling = (asString(asRecord(spec.updateStrategy)?.type) ?? 'RollingUpdate') === 'RollingUpdate';
    if (rolling && status.updatedReplicas === status.replicas && status.readyReplicas === status.replicas) {
      status.currentRevision = update.name;
      status.currentReplicas = status.updatedReplicas;
    }
    omitZero(status, ['readyReplicas', 'currentReplicas', 'updatedReplicas', 'collisionCount']);
    writeStatus(this.ctx.store, RESOURCES.statefulsets, fresh, status);
    const waits = pods.map((p) => msUntilAvailable(p, minReady)).filter((ms): ms is number => ms !== undefined);
    if (waits.length) this.queue.addAfter(`${fresh.metadata.namespace}/${fresh.metadata.name}`, Math.min(...waits));
  }
}
