// CronJob controller: creates Jobs `<cronjob>-<scheduled minutes since epoch>` owned by the
// CronJob when the schedule fires (or on trigger()), honours suspend, concurrencyPolicy and
// startingDeadlineSeconds, keeps status.active/lastScheduleTime/lastSuccessfulTime and the
// successful/failed history limits.
import { RESOURCES } from '../resources.js';
import { StoreError } from '../store.js';
import type { KubeObject, ResourceType } from '../types.js';
import {
  asInt,
  asRecord,
  asString,
  errorMessage,
  ownedBy,
  ownerReference,
  rfc3339,
  specOf,
  splitKey,
  statusOf,
  writeStatus,
  type Json,
} from './common.js';
import type { ControllerContext } from './context.js';
import { lastScheduleBetween, parseCron } from './cron.js';
import { deleteJobWithPods, jobFinished } from './job.js';
import { WorkQueue } from './queue.js';

export const SCHEDULED_ANNOTATION = 'batch.kubernetes.io/cronjob-scheduled-timestamp';

/** Creates an object through admission (the API server's path) instead of straight into the store. */
export type AdmitCreate = (type: ResourceType, obj: KubeObject) => Promise<KubeObject>;

export interface TriggerOptions {
  /** The schedule time the Job stands for (default now); it names the Job. */
  scheduledTime?: Date;
  /** Create even when the CronJob is suspended (like `kubectl create job --from=cronjob/...`). */
  ignoreSuspend?: boolean;
}

export class CronJobController {
  readonly queue: WorkQueue;
  private readonly inFlight = new Set<string>();
  private readonly badSchedules = new Map<string, string>();

  constructor(
    private readonly ctx: ControllerContext,
    private readonly admitCreate: AdmitCreate | undefined,
  ) {
    this.queue = new WorkQueue('cronjob', (key) => this.sync(key), ctx.log);
  }

  sync(key: string): void {
    const [namespace, name] = splitKey(key);
    const cj = this.ctx.store.get(RESOURCES.cronjobs, namespace, name);
    if (!cj || cj.metadata.deletionTimestamp) return;
    this.cleanupHistory(cj);
    this.updateStatus(cj, undefined);
    if (specOf(cj).suspend === true) return;
    const due = this.dueTime(cj);
    if (due !== undefined)
      void this.fire(cj, due).catch((err) =>
        this.ctx.log.warn({ cronjob: key, err: errorMessage(err) }, 'scheduled run failed'),
      );
    // Look again at the next minute boundary.
    this.queue.addAfter(key, 60_000 - (Date.now() % 60_000) + 50);
  }

  /** Runs the CronJob now, as if its schedule fired. Undefined when suspended or skipped by concurrencyPolicy. */
  async trigger(namespace: string, name: string, options: TriggerOptions = {}): Promise<KubeObject | undefined> {
    const cj = this.ctx.store.get(RESOURCES.cronjobs, namespace, name);
    if (!cj) throw new StoreError('NotFound', `cronjobs.batch "${name}" not found`);
    if (specOf(cj).suspend === true && !options.ignoreSuspend) return undefined;
    return this.fire(cj, (options.scheduledTime ?? new Date()).getTime());
  }

  private dueTime(cj: KubeObject): number | undefined {
    const spec = specOf(cj);
    const key = `${cj.metadata.namespace}/${cj.metadata.name}`;
    const scheduleText = asString(spec.schedule) ?? '';
    let schedule;
    try {
      schedule = parseCron(scheduleText, asString(spec.timeZone));
      this.badSchedules.delete(key);
    } catch (err) {
      if (this.badSchedules.get(key) !== scheduleText) {
        this.badSchedules.set(key, scheduleText);
        this.ctx.events.record(
          cj,
          'Warning',
          'UnparseableSchedule',
          `unparseable schedule: "${scheduleText}" : ${errorMessage(err)}`,
          'cronjob-controller',
        );
      }
      return undefined;
    }
    const since = Date.parse(asString(statusOf(cj).lastScheduleTime) ?? cj.metadata.creationTimestamp ?? '');
    const now = Date.now();
    const due = lastScheduleBetween(schedule, Number.isFinite(since) ? since : now, now);
    if (due === undefined) return undefined;
    const deadline = spec.startingDeadlineSeconds;
    if (typeof deadline === 'number' && due + deadline * 1000 < now) return undefined;
    return due;
  }

  private async fire(cj: KubeObject, scheduledMs: number): Promise<KubeObject | undefined> {
    const key = `${cj.metadata.namespace}/${cj.metadata.name}`;
    const jobName = `${cj.metadata.name}-${Math.floor(scheduledMs / 60_000)}`;
    const existing = this.ctx.store.get(RESOURCES.jobs, cj.metadata.namespace, jobName);
    if (existing) return existing;
    if (this.inFlight.has(jobName)) return undefined;
    const active = ownedBy(this.ctx.store, RESOURCES.jobs, cj).filter((j) => !jobFinished(j));
    const policy = asString(specOf(cj).concurrencyPolicy) ?? 'Allow';
    if (policy === 'Forbid' && active.length > 0) {
      this.ctx.events.record(
        cj,
        'Normal',
        'JobAlreadyActive',
        'Not starting job because prior execution is running and concurrency policy is Forbid',
        'cronjob-controller',
      );
      return undefined;
    }
    if (policy === 'Replace') {
      for (const job of active) {
        deleteJobWithPods(this.ctx.store, job, this.ctx.defaultGraceSeconds);
        this.ctx.events.record(
          cj,
          'Normal',
          'SuccessfulDelete',
          `Deleted job ${job.metadata.name}`,
          'cronjob-controller',
        );
      }
    }
    this.inFlight.add(jobName);
    try {
      const job = this.jobFor(cj, jobName, scheduledMs);
      const created = this.admitCreate
        ? await this.admitCreate(RESOURCES.jobs, job)
        : this.ctx.store.create(RESOURCES.jobs, job);
      this.ctx.events.record(
        cj,
        'Normal',
        'SuccessfulCreate',
        `Created job ${created.metadata.name}`,
        'cronjob-controller',
      );
      const fresh = this.ctx.store.get(RESOURCES.cronjobs, cj.metadata.namespace, cj.metadata.name);
      if (fresh && fresh.metadata.uid === cj.metadata.uid) this.updateStatus(fresh, scheduledMs);
      return created;
    } catch (err) {
      this.ctx.events.record(
        cj,
        'Warning',
        'FailedCreate',
        `Error creating job: ${errorMessage(err)}`,
        'cronjob-controller',
      );
      throw err;
    } finally {
      this.inFlight.delete(jobName);
      this.queue.add(key);
    }
  }

  private jobFor(cj: KubeObject, name: string, scheduledMs: number): KubeObject {
    const template = asRecord(specOf(cj).jobTemplate) ?? {};
    const meta = asRecord(template.metadata) ?? {};
    return {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name,
        namespace: cj.metadata.namespace,
        labels: structuredClone((asRecord(meta.labels) ?? {}) as Record<string, string>),
        annotations: {
          ...structuredClone((asRecord(meta.annotations) ?? {}) as Record<string, string>),
          [SCHEDULED_ANNOTATION]: rfc3339(scheduledMs),
        },
        ownerReferences: [ownerReference(cj)],
      },
      spec: structuredClone(asRecord(template.spec) ?? {}),
    };
  }

  private updateStatus(cj: KubeObject, scheduledMs: number | undefined): void {
    const jobs = ownedBy(this.ctx.store, RESOURCES.jobs, cj);
    const status: Json = { ...statusOf(cj) };
    const active = jobs.filter((j) => !jobFinished(j));
    if (active.length) {
      status.active = active.map((j) => ({
        apiVersion: 'batch/v1',
        kind: 'Job',
        name: j.metadata.name,
        namespace: j.metadata.namespace,
        uid: j.metadata.uid,
        resourceVersion: j.metadata.resourceVersion,
      }));
    } else {
      delete status.active;
    }
    if (scheduledMs !== undefined) {
      const prev = Date.parse(asString(status.lastScheduleTime) ?? '');
      if (!Number.isFinite(prev) || scheduledMs > prev) status.lastScheduleTime = rfc3339(scheduledMs);
    }
    const succeededAt = jobs
      .filter((j) => jobFinished(j) === 'Complete')
      .map((j) => Date.parse(asString(statusOf(j).completionTime) ?? ''))
      .filter(Number.isFinite);
    if (succeededAt.length) {
      const latest = Math.max(...succeededAt, Date.parse(asString(status.lastSuccessfulTime) ?? '') || 0);
      status.lastSuccessfulTime = rfc3339(latest);
    }
    writeStatus(this.ctx.store, RESOURCES.cronjobs, cj, status);
  }

  private cleanupHistory(cj: KubeObject): void {
    const spec = specOf(cj);
    const jobs = ownedBy(this.ctx.store, RESOURCES.jobs, cj);
    const trim = (kind: 'Complete' | 'Failed', limit: number): void => {
      const done = jobs
        .filter((j) => jobFinished(j) === kind)
        .sort(
          (a, b) =>
            (Date.parse(a.metadata.creationTimestamp ?? '') || 0) -
            (Date.parse(b.metadata.creationTimestamp ?? '') || 0),
        );
      for (const job of done.slice(0, Math.max(0, done.length - limit))) {
        deleteJobWithPods(this.ctx.store, job, this.ctx.defaultGraceSeconds);
        this.ctx.events.record(
          cj,
          'Normal',
          'SuccessfulDelete',
          `Deleted job ${job.metadata.name}`,
          'cronjob-controller',
        );
      }
    };
    trim('Complete', Math.max(0, asInt(spec.successfulJobsHistoryLimit, 3)));
    trim('Failed', Math.max(0, asInt(spec.failedJobsHistoryLimit, 1)));
  }
}
