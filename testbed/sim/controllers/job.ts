// Job controller (NonIndexed completion mode): pods `<job>-<random>`, `suspend` honoured (and
// suspending deletes the active pods), Complete after `completions` successes, Failed after more
// than `backoffLimit` failures or past activeDeadlineSeconds, ttlSecondsAfterFinished.
// Finished pods are counted through the `batch.kubernetes.io/job-tracking` finalizer, as for real.
import { RESOURCES } from '../resources.js';
import type { Store } from '../store.js';
import { StoreError } from '../store.js';
import type { KubeObject } from '../types.js';
import {
  asInt,
  conditionsOf,
  controllerRef,
  deletePod,
  findCondition,
  isActive,
  isPodReady,
  isTerminal,
  isTerminating,
  omitZero,
  ownedBy,
  podFromTemplate,
  podPhase,
  podTemplateOf,
  rfc3339,
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

export const TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';

export function jobFinished(job: KubeObject): 'Complete' | 'Failed' | undefined {
  for (const c of conditionsOf(job)) {
    if ((c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') return c.type;
  }
  return undefined;
}

/** Deletes a Job and its pods (what the API server's garbage collector does for a Job's pods). */
export function deleteJobWithPods(store: Store, job: KubeObject, defaultGraceSeconds: number): void {
  const pods = ownedBy(store, RESOURCES.pods, job);
  try {
    store.remove(RESOURCES.jobs, job.metadata.namespace, job.metadata.name);
  } catch (err) {
    if (!(err instanceof StoreError && err.reason === 'NotFound')) throw err;
  }
  for (const pod of pods) {
    dropTrackingFinalizer(store, pod);
    const fresh = store.get(RESOURCES.pods, pod.metadata.namespace, pod.metadata.name);
    if (fresh && fresh.metadata.uid === pod.metadata.uid && !isTerminating(fresh))
      deletePod(store, fresh, defaultGraceSeconds);
  }
}

function dropTrackingFinalizer(store: Store, pod: KubeObject): void {
  updateWithRetry(store, RESOURCES.pods, pod.metadata.namespace, pod.metadata.name, (cur) => {
    if (cur.metadata.uid !== pod.metadata.uid || !cur.metadata.finalizers?.includes(TRACKING_FINALIZER)) return false;
    cur.metadata.finalizers = cur.metadata.finalizers.filter((f) => f !== TRACKING_FINALIZER);
  });
}

export class JobController {
  readonly queue: WorkQueue;
  /** Pods this controller deleted itself (suspend, excess, finish): their end is not a failure. */
  private readonly ownDeletions = new Set<string>();

  constructor(private readonly ctx: ControllerContext) {
    this.queue = new WorkQueue('job', (key) => this.sync(key), ctx.log);
  }

  sync(key: string): void {
    const [namespace, name] = splitKey(key);
    const job = this.ctx.store.get(RESOURCES.jobs, namespace, name);
    this.releaseOrphans(namespace, name, job?.metadata.uid);
    if (!job) return;
    if (job.metadata.deletionTimestamp) return;
    const found = podTemplateOf(job);
    if ('error' in found) {
      this.ctx.log.warn({ job: key, error: found.error }, 'skipping Job with an unusable template');
      return;
    }
    const spec = specOf(job);
    const prev = statusOf(job);
    const counts = this.countFinished(job, asInt(prev.succeeded, 0), asInt(prev.failed, 0));
    let conditions = conditionsOf(job);
    const status: Json = { ...prev };
    status.succeeded = counts.succeeded;
    status.failed = counts.failed;
    const pods = ownedBy(this.ctx.store, RESOURCES.pods, job);
    const finished = jobFinished(job);

    if (finished) {
      this.deleteActive(job, pods);
      this.writeJobStatus(job, status, conditions);
      this.scheduleTtl(job);
      return;
    }
    if (spec.suspend === true) {
      this.deleteActive(job, pods);
      conditions = setCondition(
        conditions,
        { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' },
        'job',
      );
      delete status.startTime;
      this.writeJobStatus(job, status, conditions);
      return;
    }
    if (findCondition(conditions, 'Suspended')?.status === 'True') {
      conditions = setCondition(
        conditions,
        { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed' },
        'job',
      );
      delete status.startTime;
    }
    status.startTime ??= rfc3339();

    const failure = this.failureReason(job, counts.failed, status.startTime as string);
    if (failure) {
      this.deleteActive(job, pods);
      conditions = setCondition(conditions, { type: 'Failed', status: 'True', ...failure }, 'job');
      this.writeJobStatus(job, status, conditions);
      this.event(job, 'Warning', failure.reason, failure.message);
      this.scheduleTtl(job);
      return;
    }
    const completions = Math.max(1, asInt(spec.completions, 1));
    if (counts.succeeded >= completions) {
      this.deleteActive(job, pods);
      conditions = setCondition(
        conditions,
        {
          type: 'Complete',
          status: 'True',
          reason: 'CompletionsReached',
          message: 'Reached expected number of succeeded pods',
        },
        'job',
      );
      status.completionTime = rfc3339();
      this.writeJobStatus(job, status, conditions);
      this.event(job, 'Normal', 'Completed', 'Job completed');
      this.scheduleTtl(job);
      return;
    }
    this.scaleActive(
      job,
      found.template,
      pods,
      Math.min(Math.max(0, asInt(spec.parallelism, 1)), completions - counts.succeeded),
    );
    this.writeJobStatus(job, status, conditions);
    this.scheduleDeadline(job, status.startTime as string);
  }

  /** Counts terminal pods that still carry the tracking finalizer, then releases them. */
  private countFinished(job: KubeObject, succeeded: number, failed: number): { succeeded: number; failed: number } {
    const finished = jobFinished(job) !== undefined;
    for (const pod of ownedBy(this.ctx.store, RESOURCES.pods, job)) {
      if (!isTerminal(pod) || !pod.metadata.finalizers?.includes(TRACKING_FINALIZER)) continue;
      const uid = pod.metadata.uid ?? '';
      const ignored = finished || this.ownDeletions.has(uid);
      if (!ignored && podPhase(pod) === 'Succeeded') succeeded++;
      if (!ignored && podPhase(pod) === 'Failed') failed++;
      this.ownDeletions.delete(uid);
      dropTrackingFinalizer(this.ctx.store, pod);
    }
    return { succeeded, failed };
  }

  private failureReason(
    job: KubeObject,
    failed: number,
    startTime: string,
  ): { reason: string; message: string } | undefined {
    const spec = specOf(job);
    const backoffLimit = Math.max(0, asInt(spec.backoffLimit, 6));
    if (failed > backoffLimit)
      return { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    const deadline = spec.activeDeadlineSeconds;
    if (typeof deadline === 'number' && Date.parse(startTime) + deadline * 1000 <= Date.now()) {
      return { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    }
    return undefined;
  }

  private scaleActive(job: KubeObject, template: Json, pods: KubeObject[], want: number): void {
    const active = pods.filter(isActive);
    for (let i = active.length; i < want; i++) {
      const pod = podFromTemplate(
        template,
        job,
        { generateName: `${job.metadata.name}-` },
        {
          'batch.kubernetes.io/controller-uid': job.metadata.uid ?? '',
          'batch.kubernetes.io/job-name': job.metadata.name,
          'controller-uid': job.metadata.uid ?? '',
          'job-name': job.metadata.name,
        },
      );
      pod.metadata.finalizers = [TRACKING_FINALIZER];
      const created = this.ctx.store.create(RESOURCES.pods, pod);
      this.event(job, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
    }
    if (active.length > want) this.deletePods(job, active.slice(want));
  }

  private deleteActive(job: KubeObject, pods: KubeObject[]): void {
    const active = pods.filter(isActive);
    if (active.length) this.deletePods(job, active);
  }

  private deletePods(job: KubeObject, pods: KubeObject[]): void {
    for (const pod of pods) {
      this.ownDeletions.add(pod.metadata.uid ?? '');
      deletePod(this.ctx.store, pod, this.ctx.defaultGraceSeconds);
      this.event(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
    }
  }

  private writeJobStatus(job: KubeObject, status: Json, conditions: Condition[]): void {
    const pods = ownedBy(this.ctx.store, RESOURCES.pods, job);
    status.active = pods.filter(isActive).length;
    status.ready = pods.filter((p) => isActive(p) && isPodReady(p)).length;
    status.terminating = pods.filter((p) => isTerminating(p) && !isTerminal(p)).length;
    status.uncountedTerminatedPods = {};
    if (conditions.length) status.conditions = conditions;
    else delete status.conditions;
    omitZero(status, ['active', 'succeeded', 'failed']);
    writeStatus(this.ctx.store, RESOURCES.jobs, job, status);
  }

  private scheduleDeadline(job: KubeObject, startTime: string): void {
    const deadline = specOf(job).activeDeadlineSeconds;
    if (typeof deadline !== 'number') return;
    const left = Date.parse(startTime) + deadline * 1000 - Date.now();
    this.queue.addAfter(`${job.metadata.namespace}/${job.metadata.name}`, Math.max(0, left) + 10);
  }

  private scheduleTtl(job: KubeObject): void {
    const ttl = specOf(job).ttlSecondsAfterFinished;
    if (typeof ttl !== 'number') return;
    const fresh = this.ctx.store.get(RESOURCES.jobs, job.metadata.namespace, job.metadata.name);
    if (!fresh) return;
    const finishedAt = Date.parse(
      (statusOf(fresh).completionTime as string | undefined) ??
        conditionsOf(fresh).find((c) => c.type === 'Failed' && c.status === 'True')?.lastTransitionTime ??
        '',
    );
    if (!Number.isFinite(finishedAt)) return;
    const left = finishedAt + ttl * 1000 - Date.now();
    if (left > 0) {
      this.queue.addAfter(`${job.metadata.namespace}/${job.metadata.name}`, left + 10);
      return;
    }
    deleteJobWithPods(this.ctx.store, fresh, this.ctx.defaultGraceSeconds);
  }

  /** Pods of a Job that no longer exists must not stay blocked by the tracking finalizer. */
  private releaseOrphans(namespace: string, name: string, currentUid: string | undefined): void {
    const orphans = this.ctx.store.list(RESOURCES.pods, namespace, (pod) => {
      const ref = controllerRef(pod);
      return (
        ref?.kind === 'Job' &&
        ref.name === name &&
        ref.uid !== currentUid &&
        (pod.metadata.finalizers?.includes(TRACKING_FINALIZER) ?? false)
      );
    }).items;
    for (const pod of orphans) dropTrackingFinalizer(this.ctx.store, pod);
  }

  private event(job: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.ctx.events.record(job, type, reason, message, 'job-controller');
  }
}
