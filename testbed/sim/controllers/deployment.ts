// Deployment controller: one ReplicaSet per pod template (`<name>-<pod-template-hash>`), rolling
// update with maxSurge/maxUnavailable or Recreate, `paused` honoured, status and conditions as
// `kubectl rollout status` reads them.
import { RESOURCES } from '../resources.js';
import type { KubeObject } from '../types.js';
import {
  asInt,
  asRecord,
  asString,
  computeHash,
  conditionsOf,
  findCondition,
  isTerminal,
  omitZero,
  ownedBy,
  ownerReference,
  podTemplateOf,
  resolveIntOrPercent,
  setCondition,
  specOf,
  splitKey,
  statusOf,
  updateWithRetry,
  writeStatus,
  type Condition,
  type Json,
} from './common.js';
import type { ControllerContext } from './context.js';
import { WorkQueue } from './queue.js';

export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const DESIRED_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
const MAX_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
const HASH_LABEL = 'pod-template-hash';

interface Plan {
  deployment: KubeObject;
  replicas: number;
  template: Json;
  hash: string;
  newRS: KubeObject | undefined;
  oldRSs: KubeObject[];
  maxSurge: number;
  maxUnavailable: number;
  createdNewRS: boolean;
}

function rsReplicas(rs: KubeObject): number {
  return Math.max(0, asInt(specOf(rs).replicas, 1));
}

function rsStatus(rs: KubeObject, field: string): number {
  return asInt(statusOf(rs)[field], 0);
}

function revisionOf(obj: KubeObject): number {
  const n = Number(obj.metadata.annotations?.[REVISION_ANNOTATION] ?? '0');
  return Number.isInteger(n) ? n : 0;
}

function sum(list: KubeObject[], f: (rs: KubeObject) => number): number {
  return list.reduce((acc, rs) => acc + f(rs), 0);
}

function byCreation(a: KubeObject, b: KubeObject): number {
  const d =
    (Date.parse(a.metadata.creationTimestamp ?? '') || 0) - (Date.parse(b.metadata.creationTimestamp ?? '') || 0);
  return d !== 0 ? d : a.metadata.name.localeCompare(b.metadata.name);
}

export class DeploymentController {
  readonly queue: WorkQueue;

  constructor(private readonly ctx: ControllerContext) {
    this.queue = new WorkQueue('deployment', (key) => this.sync(key), ctx.log);
  }

  sync(key: string): void {
    const [namespace, name] = splitKey(key);
    const d = this.ctx.store.get(RESOURCES.deployments, namespace, name);
    if (!d || d.metadata.deletionTimestamp) return;
    const found = podTemplateOf(d);
    if ('error' in found) {
      this.ctx.log.warn({ deployment: key, error: found.error }, 'skipping Deployment with an unusable template');
      return;
    }
    const plan = this.plan(d, found.template);
    // Wait until every ReplicaSet has observed its last scale: their status is what the rollout steps on.
    const settled = [...plan.oldRSs, ...(plan.newRS ? [plan.newRS] : [])].every(
      (rs) => asInt(statusOf(rs).observedGeneration, 0) >= (rs.metadata.generation ?? 1),
    );
    if (specOf(d).paused === true) {
      this.scalePaused(plan);
    } else if (settled) {
      this.ensureNewRS(plan);
      if (this.strategyType(d) === 'Recreate') this.recreate(plan);
      else this.rollingUpdate(plan);
      this.cleanupHistory(plan);
    }
    this.updateStatus(plan);
  }

  private strategyType(d: KubeObject): string {
    return asString(asRecord(specOf(d).strategy)?.type) ?? 'RollingUpdate';
  }

  private plan(d: KubeObject, template: Json): Plan {
    const replicas = Math.max(0, asInt(specOf(d).replicas, 1));
    const hash = computeHash(template);
    const all = ownedBy(this.ctx.store, RESOURCES.replicasets, d).sort(byCreation);
    const newRS = all.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash);
    const rolling = asRecord(asRecord(specOf(d).strategy)?.rollingUpdate);
    let maxSurge = 0;
    let maxUnavailable = 0;
    if (this.strategyType(d) !== 'Recreate') {
      maxSurge = resolveIntOrPercent(rolling?.maxSurge, '25%', replicas, true);
      maxUnavailable = resolveIntOrPercent(rolling?.maxUnavailable, '25%', replicas, false);
      if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    }
    return {
      deployment: d,
      replicas,
      template,
      hash,
      newRS,
      oldRSs: all.filter((rs) => rs !== newRS),
      maxSurge,
      maxUnavailable,
      createdNewRS: false,
    };
  }

  /** Creates the ReplicaSet of the current template, or bumps the revision of a re-used old one. */
  private ensureNewRS(plan: Plan): void {
    const maxOld = Math.max(0, ...plan.oldRSs.map(revisionOf));
    if (plan.newRS) {
      if (revisionOf(plan.newRS) <= maxOld) {
        plan.newRS = this.annotateRS(plan.newRS, { [REVISION_ANNOTATION]: String(maxOld + 1) }) ?? plan.newRS;
      }
      this.syncDeploymentRevision(plan.deployment, revisionOf(plan.newRS));
      return;
    }
    const created = this.createNewRS(plan, maxOld + 1);
    plan.newRS = created;
    plan.createdNewRS = true;
    this.syncDeploymentRevision(plan.deployment, revisionOf(created));
  }

  private annotateRS(rs: KubeObject, annotations: Record<string, string>): KubeObject | undefined {
    return updateWithRetry(this.ctx.store, RESOURCES.replicasets, rs.metadata.namespace, rs.metadata.name, (cur) => {
      if (cur.metadata.uid !== rs.metadata.uid) return false;
      cur.metadata.annotations = { ...cur.metadata.annotations, ...annotations };
    });
  }

  private createNewRS(plan: Plan, revision: number): KubeObject {
    const d = plan.deployment;
    const template = structuredClone(plan.template);
    const meta = (asRecord(template.metadata) ?? (template.metadata = {})) as Json;
    meta.labels = { ...(asRecord(meta.labels) ?? {}), [HASH_LABEL]: plan.hash };
    const selector = structuredClone(asRecord(specOf(d).selector) ?? {});
    selector.matchLabels = { ...(asRecord(selector.matchLabels) ?? {}), [HASH_LABEL]: plan.hash };
    const initial = this.strategyType(d) === 'Recreate' ? 0 : this.newRSTarget(plan, 0);
    const rs: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${d.metadata.name}-${plan.hash}`,
        namespace: d.metadata.namespace,
        labels: { ...(asRecord(meta.labels) as Record<string, string>) },
        annotations: {
          [REVISION_ANNOTATION]: String(revision),
          [DESIRED_ANNOTATION]: String(plan.replicas),
          [MAX_ANNOTATION]: String(plan.replicas + plan.maxSurge),
        },
        ownerReferences: [ownerReference(d)],
      },
      spec: {
        replicas: initial,
        minReadySeconds: asInt(specOf(d).minReadySeconds, 0),
        selector,
        template,
      },
    };
    const created = this.ctx.store.create(RESOURCES.replicasets, rs);
    if (initial > 0) this.recordScale(d, created, 0, initial);
    return created;
  }

  private syncDeploymentRevision(d: KubeObject, revision: number): void {
    if (d.metadata.annotations?.[REVISION_ANNOTATION] === String(revision)) return;
    const updated = updateWithRetry(
      this.ctx.store,
      RESOURCES.deployments,
      d.metadata.namespace,
      d.metadata.name,
      (cur) => {
        if (cur.metadata.uid !== d.metadata.uid) return false;
        cur.metadata.annotations = { ...cur.metadata.annotations, [REVISION_ANNOTATION]: String(revision) };
      },
    );
    if (updated) d.metadata = updated.metadata;
  }

  /** How many replicas the new ReplicaSet may have now, surge permitting. */
  private newRSTarget(plan: Plan, current: number): number {
    if (current >= plan.replicas) return plan.replicas;
    const total = sum(plan.oldRSs, rsReplicas) + current;
    const maxTotal = plan.replicas + plan.maxSurge;
    if (total >= maxTotal) return current;
    return current + Math.min(maxTotal - total, plan.replicas - current);
  }

  private rollingUpdate(plan: Plan): void {
    const newRS = plan.newRS;
    if (!newRS) return;
    const target = this.newRSTarget(plan, rsReplicas(newRS));
    if (target !== rsReplicas(newRS)) plan.newRS = this.scaleRS(plan, newRS, target);
    this.scaleDownOld(plan);
  }

  private scaleDownOld(plan: Plan): void {
    const newRS = plan.newRS;
    if (!newRS || sum(plan.oldRSs, rsReplicas) === 0) return;
    const all = [...plan.oldRSs, newRS];
    const minAvailable = plan.replicas - plan.maxUnavailable;
    const newUnavailable = rsReplicas(newRS) - rsStatus(newRS, 'availableReplicas');
    let budget = sum(all, rsReplicas) - minAvailable - newUnavailable;
    if (budget <= 0) return;
    // First the old pods that are not available anyway, oldest ReplicaSets first.
    for (const rs of plan.oldRSs) {
      if (budget <= 0) break;
      const unhealthy = rsReplicas(rs) - rsStatus(rs, 'availableReplicas');
      if (unhealthy <= 0) continue;
      const cut = Math.min(unhealthy, budget);
      this.replaceOld(plan, rs, rsReplicas(rs) - cut);
      budget -= cut;
    }
    // Then available ones, as far as minAvailable allows.
    const available = sum([...plan.oldRSs, newRS], (rs) => Math.min(rsStatus(rs, 'availableReplicas'), rsReplicas(rs)));
    let scaleDown = available - minAvailable;
    for (const rs of plan.oldRSs) {
      if (scaleDown <= 0) break;
      const cut = Math.min(rsReplicas(rs), scaleDown);
      if (cut <= 0) continue;
      this.replaceOld(plan, rs, rsReplicas(rs) - cut);
      scaleDown -= cut;
    }
  }

  private replaceOld(plan: Plan, rs: KubeObject, replicas: number): void {
    const scaled = this.scaleRS(plan, rs, replicas);
    plan.oldRSs = plan.oldRSs.map((o) => (o.metadata.uid === rs.metadata.uid ? scaled : o));
  }

  private recreate(plan: Plan): void {
    const newRS = plan.newRS;
    if (!newRS) return;
    for (const rs of plan.oldRSs) if (rsReplicas(rs) > 0) this.replaceOld(plan, rs, 0);
    const oldPodsLeft = plan.oldRSs.some(
      (rs) => ownedBy(this.ctx.store, RESOURCES.pods, rs).filter((p) => !isTerminal(p)).length > 0,
    );
    if (oldPodsLeft) return;
    if (rsReplicas(newRS) !== plan.replicas) plan.newRS = this.scaleRS(plan, newRS, plan.replicas);
  }

  /** Paused: no rollout, but scaling still applies to the ReplicaSets there are (proportionally). */
  private scalePaused(plan: Plan): void {
    const all = [...plan.oldRSs, ...(plan.newRS ? [plan.newRS] : [])];
    if (all.length === 0) return;
    const active = all.filter((rs) => rsReplicas(rs) > 0);
    if (active.length <= 1) {
      const target = active[0] ?? plan.newRS ?? plan.oldRSs[plan.oldRSs.length - 1];
      if (target && rsReplicas(target) !== plan.replicas) this.scaleRS(plan, target, plan.replicas);
      return;
    }
    const total = sum(active, rsReplicas);
    const allowed = plan.replicas === 0 ? 0 : plan.replicas + plan.maxSurge;
    if (allowed === total) return;
    // Shares proportional to the current sizes; the rounding remainder goes to the newest.
    const targets = active.map((rs) => Math.floor((rsReplicas(rs) * allowed) / total));
    let rest = allowed - targets.reduce((a, b) => a + b, 0);
    for (let i = targets.length - 1; rest > 0; i = (i - 1 + targets.length) % targets.length, rest--) {
      targets[i] = (targets[i] ?? 0) + 1;
    }
    active.forEach((rs, i) => {
      const target = targets[i] ?? 0;
      if (target !== rsReplicas(rs)) this.scaleRS(plan, rs, target);
    });
  }

  private scaleRS(plan: Plan, rs: KubeObject, replicas: number): KubeObject {
    const from = rsReplicas(rs);
    const updated = updateWithRetry(
      this.ctx.store,
      RESOURCES.replicasets,
      rs.metadata.namespace,
      rs.metadata.name,
      (cur) => {
        if (cur.metadata.uid !== rs.metadata.uid) return false;
        cur.spec = { ...specOf(cur), replicas };
        cur.metadata.annotations = {
          ...cur.metadata.annotations,
          [DESIRED_ANNOTATION]: String(plan.replicas),
          [MAX_ANNOTATION]: String(plan.replicas + plan.maxSurge),
        };
      },
    );
    if (!updated) return rs;
    if (from !== replicas) this.recordScale(plan.deployment, updated, from, replicas);
    return updated;
  }

  private recordScale(d: KubeObject, rs: KubeObject, from: number, to: number): void {
    const verb = to > from ? 'up' : 'down';
    this.ctx.events.record(
      d,
      'Normal',
      'ScalingReplicaSet',
      `Scaled ${verb} replica set ${rs.metadata.name} from ${from} to ${to}`,
      'deployment-controller',
    );
  }

  /** Deletes old, empty ReplicaSets beyond spec.revisionHistoryLimit (default 10). */
  private cleanupHistory(plan: Plan): void {
    const limit = Math.max(0, asInt(specOf(plan.deployment).revisionHistoryLimit, 10));
    const empty = plan.oldRSs.filter((rs) => rsReplicas(rs) === 0 && rsStatus(rs, 'replicas') === 0);
    const excess = empty.length - limit;
    if (excess <= 0) return;
    const doomed = [...empty].sort((a, b) => revisionOf(a) - revisionOf(b)).slice(0, excess);
    for (const rs of doomed) {
      if (ownedBy(this.ctx.store, RESOURCES.pods, rs).length > 0) continue;
      try {
        this.ctx.store.remove(RESOURCES.replicasets, rs.metadata.namespace, rs.metadata.name);
        plan.oldRSs = plan.oldRSs.filter((o) => o.metadata.uid !== rs.metadata.uid);
      } catch (err) {
        this.ctx.log.debug({ replicaset: rs.metadata.name, err: String(err) }, 'history cleanup skipped');
      }
    }
  }

  private updateStatus(plan: Plan): void {
    const d = plan.deployment;
    const current = this.ctx.store.get(RESOURCES.deployments, d.metadata.namespace, d.metadata.name);
    if (!current || current.metadata.uid !== d.metadata.uid) return;
    // Re-read the ReplicaSets: this pass may have scaled them.
    const all = ownedBy(this.ctx.store, RESOURCES.replicasets, current);
    const newRS = all.find((rs) => rs.metadata.labels?.[HASH_LABEL] === plan.hash);
    const prev = statusOf(current);
    const status: Json = {
      observedGeneration: current.metadata.generation ?? 1,
      replicas: sum(all, (rs) => rsStatus(rs, 'replicas')),
      updatedReplicas: newRS ? rsStatus(newRS, 'replicas') : 0,
      readyReplicas: sum(all, (rs) => rsStatus(rs, 'readyReplicas')),
      availableReplicas: sum(all, (rs) => rsStatus(rs, 'availableReplicas')),
      unavailableReplicas: Math.max(0, sum(all, rsReplicas) - sum(all, (rs) => rsStatus(rs, 'availableReplicas'))),
    };
    let conditions = conditionsOf(current);
    const available = (status.availableReplicas as number) >= plan.replicas - plan.maxUnavailable;
    conditions = setCondition(
      conditions,
      available
        ? {
            type: 'Available',
            status: 'True',
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
          }
        : {
            type: 'Available',
            status: 'False',
            reason: 'MinimumReplicasUnavailable',
            message: 'Deployment does not have minimum availability.',
          },
      'deployment',
    );
    conditions = this.progressing(plan, current, conditions, status, prev, newRS);
    status.conditions = orderConditions(conditions);
    const collisionCount = asInt(prev.collisionCount, 0);
    if (collisionCount) status.collisionCount = collisionCount;
    omitZero(status, ['replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas']);
    writeStatus(this.ctx.store, RESOURCES.deployments, current, status);
    this.requeueForDeadline(current, status);
  }

  private progressing(
    plan: Plan,
    d: KubeObject,
    conditions: Condition[],
    status: Json,
    prev: Json,
    newRS: KubeObject | undefined,
  ): Condition[] {
    const existing = findCondition(conditions, 'Progressing');
    if (specOf(d).paused === true) {
      return setCondition(
        conditions,
        { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' },
        'deployment',
      );
    }
    if (existing?.reason === 'DeploymentPaused') {
      conditions = setCondition(
        conditions,
        { type: 'Progressing', status: 'Unknown', reason: 'DeploymentResumed', message: 'Deployment is resumed' },
        'deployment',
      );
    }
    if (!newRS) return conditions;
    const rsName = newRS.metadata.name;
    const n = (s: Json, k: string): number => asInt(s[k], 0);
    const complete =
      n(status, 'updatedReplicas') === plan.replicas &&
      n(status, 'replicas') === plan.replicas &&
      n(status, 'availableReplicas') === plan.replicas;
    if (complete) {
      return setCondition(
        conditions,
        {
          type: 'Progressing',
          status: 'True',
          reason: 'NewReplicaSetAvailable',
          message: `ReplicaSet "${rsName}" has successfully progressed.`,
        },
        'deployment',
      );
    }
    if (plan.createdNewRS) {
      return setCondition(
        conditions,
        {
          type: 'Progressing',
          status: 'True',
          reason: 'NewReplicaSetCreated',
          message: `Created new replica set "${rsName}"`,
        },
        'deployment',
      );
    }
    const moved =
      n(status, 'updatedReplicas') > n(prev, 'updatedReplicas') ||
      n(status, 'replicas') < n(prev, 'replicas') ||
      n(status, 'readyReplicas') > n(prev, 'readyReplicas') ||
      n(status, 'availableReplicas') > n(prev, 'availableReplicas');
    const current = findCondition(conditions, 'Progressing');
    if (moved || !current || current.reason === 'DeploymentResumed' || current.reason === 'NewReplicaSetAvailable') {
      return setCondition(
        conditions,
        {
          type: 'Progressing',
          status: 'True',
          reason: 'ReplicaSetUpdated',
          message: `ReplicaSet "${rsName}" is progressing.`,
        },
        'deployment',
        moved,
      );
    }
    const deadline = asInt(specOf(d).progressDeadlineSeconds, 600);
    const since = Date.parse(current.lastUpdateTime ?? current.lastTransitionTime ?? '');
    if (current.status === 'True' && Number.isFinite(since) && since + deadline * 1000 <= Date.now()) {
      return setCondition(
        conditions,
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: `ReplicaSet "${rsName}" has timed out progressing.`,
        },
        'deployment',
      );
    }
    return conditions;
  }

  private requeueForDeadline(d: KubeObject, status: Json): void {
    const cond = findCondition((status.conditions as Condition[]) ?? [], 'Progressing');
    if (cond?.status !== 'True' || cond.reason === 'NewReplicaSetAvailable') return;
    const deadline = asInt(specOf(d).progressDeadlineSeconds, 600);
    const since = Date.parse(cond.lastUpdateTime ?? '');
    if (!Number.isFinite(since)) return;
    this.queue.addAfter(
      `${d.metadata.namespace}/${d.metadata.name}`,
      Math.max(0, since + deadline * 1000 - Date.now()) + 1000,
    );
  }
}

function orderConditions(conditions: Condition[]): Condition[] {
  const rank = (c: Condition): number => (c.type === 'Available' ? 0 : c.type === 'Progressing' ? 1 : 2);
  return [...conditions].sort((a, b) => rank(a) - rank(b));
}
