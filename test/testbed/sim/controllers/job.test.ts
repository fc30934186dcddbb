import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../../../../testbed/sim/resources.js';
import { Store } from '../../../../testbed/sim/store.js';
import type { KubeObject } from '../../../../testbed/sim/types.js';
import { TRACKING_FINALIZER, type Controllers } from '../../../../testbed/sim/controllers/index.js';
import { lastScheduleBetween, parseCron } from '../../../../testbed/sim/controllers/cron.js';
import { FakeRuntime, pods, sleep, start, waitFor } from './fake-runtime.js';

const NS = 'airflow';

let store: Store;
let runtime: FakeRuntime;
let controllers: Controllers;

beforeEach(() => {
  store = new Store();
  runtime = new FakeRuntime();
  controllers = start(store, runtime);
});

afterEach(async () => {
  await controllers.stop();
});

const jobSpec = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  template: {
    metadata: { labels: { component: 'run-airflow-migrations' } },
    spec: {
      restartPolicy: 'Never',
      containers: [
        { name: 'run-airflow-migrations', image: 'apache/airflow:3.1.0', args: ['airflow', 'db', 'migrate'] },
      ],
    },
  },
  ...extra,
});

function createJob(name: string, extra: Record<string, unknown> = {}): KubeObject {
  return store.create(RESOURCES.jobs, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NS },
    spec: jobSpec(extra),
  });
}

const job = (name: string): KubeObject | undefined => store.get(RESOURCES.jobs, NS, name);
const jobStatus = (name: string): Record<string, unknown> & { conditions?: Array<Record<string, string>> } =>
  (job(name)?.status ?? {}) as Record<string, unknown> & { conditions?: Array<Record<string, string>> };
const condition = (name: string, type: string): Record<string, string> | undefined =>
  jobStatus(name).conditions?.find((c) => c.type === type);

function patchJob(name: string, change: (spec: Record<string, unknown>) => void): void {
  const current = job(name)!;
  change(current.spec as Record<string, unknown>);
  store.update(RESOURCES.jobs, current);
}

describe('Job controller', () => {
  it('runs a pod to completion: Complete, succeeded 1, completionTime; the pod keeps Succeeded without the tracking finalizer', async () => {
    runtime.behaviour = () => ({ exitAfterMs: 30, exitCode: 0 });
    const created = createJob('migrate');
    const jobPod = await waitFor('job pod', () => pods(store, NS)[0]);
    expect(jobPod.metadata.name).toMatch(/^migrate-[a-z0-9]{5}$/);
    expect(jobPod.metadata.labels).toMatchObject({
      'job-name': 'migrate',
      'batch.kubernetes.io/job-name': 'migrate',
      'controller-uid': created.metadata.uid,
      'batch.kubernetes.io/controller-uid': created.metadata.uid,
      component: 'run-airflow-migrations',
    });
    expect(jobPod.metadata.finalizers).toEqual([TRACKING_FINALIZER]);
    await waitFor('active', () => jobStatus('migrate').active === 1);
    expect(jobStatus('migrate').startTime).toEqual(expect.any(String));
    await waitFor('complete', () => condition('migrate', 'Complete')?.status === 'True');
    const s = jobStatus('migrate');
    expect(s).toMatchObject({ succeeded: 1, ready: 0 });
    expect(s.active).toBeUndefined();
    expect(s.failed).toBeUndefined();
    expect(s.completionTime).toEqual(expect.any(String));
    const [done] = pods(store, NS);
    expect((done?.status as { phase: string }).phase).toBe('Succeeded');
    await waitFor('finalizer released', () => (pods(store, NS)[0]?.metadata.finalizers ?? []).length === 0);
    expect(pods(store, NS)).toHaveLength(1);
  });

  it('suspended: no pods and Suspended; resumed: runs; suspending again deletes the active pod without counting a failure', async () => {
    createJob('migrate', { suspend: true });
    await waitFor('suspended', () => condition('migrate', 'Suspended')?.status === 'True');
    expect(condition('migrate', 'Suspended')).toMatchObject({ reason: 'JobSuspended', message: 'Job suspended' });
    await sleep(50);
    expect(pods(store, NS)).toHaveLength(0);
    expect(jobStatus('migrate').startTime).toBeUndefined();

    patchJob('migrate', (spec) => (spec.suspend = false));
    await waitFor('running pod', () =>
      pods(store, NS).find((p) => (p.status as { phase: string }).phase === 'Running'),
    );
    expect(condition('migrate', 'Suspended')).toMatchObject({ status: 'False', reason: 'JobResumed' });
    await waitFor('ready counted', () => jobStatus('migrate').ready === 1);

    patchJob('migrate', (spec) => (spec.suspend = true));
    await waitFor('pods gone', () => pods(store, NS).length === 0);
    await waitFor(
      'suspended again',
      () => condition('migrate', 'Suspended')?.status === 'True' && jobStatus('migrate').active === undefined,
    );
    expect(jobStatus('migrate').failed).toBeUndefined();
    expect(runtime.processes.every((p) => !p.running)).toBe(true);
  });

  it('fails after more than backoffLimit failed pods', async () => {
    runtime.behaviour = () => ({ exitAfterMs: 5, exitCode: 1 });
    createJob('migrate', { backoffLimit: 1 });
    await waitFor('failed', () => condition('migrate', 'Failed')?.status === 'True');
    expect(condition('migrate', 'Failed')).toMatchObject({
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
    });
    expect(jobStatus('migrate').failed).toBe(2);
    expect(jobStatus('migrate').succeeded).toBeUndefined();
    expect(jobStatus('migrate').completionTime).toBeUndefined();
    await sleep(50);
    expect(pods(store, NS)).toHaveLength(2);
    expect(pods(store, NS).every((p) => (p.status as { phase: string }).phase === 'Failed')).toBe(true);
  });

  it('a pod deleted by someone else counts as failed and is replaced', async () => {
    createJob('migrate');
    const first = await waitFor('running pod', () =>
      pods(store, NS).find((p) => (p.status as { phase: string }).phase === 'Running'),
    );
    const fresh = store.get(RESOURCES.pods, NS, first.metadata.name)!;
    fresh.metadata.deletionTimestamp = new Date().toISOString();
    fresh.metadata.deletionGracePeriodSeconds = 1;
    store.update(RESOURCES.pods, fresh);
    await waitFor('failure counted', () => jobStatus('migrate').failed === 1);
    await waitFor('replacement', () =>
      pods(store, NS).some((p) => p.metadata.name !== first.metadata.name && !p.metadata.deletionTimestamp),
    );
    await waitFor('first pod removed', () => !store.get(RESOURCES.pods, NS, first.metadata.name));
  });

  it('deletes a finished Job after ttlSecondsAfterFinished', async () => {
    runtime.behaviour = () => ({ exitAfterMs: 5, exitCode: 0 });
    createJob('migrate', { ttlSecondsAfterFinished: 0 });
    await waitFor('job deleted', () => job('migrate') === undefined);
    await waitFor('pods deleted', () => pods(store, NS).length === 0);
  });
});

describe('CronJob controller', () => {
  function createCronJob(extra: Record<string, unknown> = {}): KubeObject {
    return store.create(RESOURCES.cronjobs, {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'cleanup', namespace: NS },
      spec: {
        schedule: '0 0 1 1 *',
        jobTemplate: { metadata: { labels: { component: 'cleanup' } }, spec: jobSpec() },
        ...extra,
      },
    });
  }

  it('trigger() creates an owned Job that runs; suspend stops triggers', async () => {
    runtime.behaviour = () => ({ exitAfterMs: 10, exitCode: 0 });
    const cj = createCronJob();
    const at = new Date('2030-01-01T00:00:00Z');
    const created = await controllers.cronJobs.trigger(NS, 'cleanup', { scheduledTime: at });
    expect(created?.metadata.name).toBe(`cleanup-${Math.floor(at.getTime() / 60000)}`);
    expect(created?.metadata.ownerReferences?.[0]).toMatchObject({
      kind: 'CronJob',
      name: 'cleanup',
      uid: cj.metadata.uid,
      controller: true,
    });
    expect(created?.metadata.annotations?.['batch.kubernetes.io/cronjob-scheduled-timestamp']).toBe(
      '2030-01-01T00:00:00Z',
    );
    expect(created?.metadata.labels).toEqual({ component: 'cleanup' });
    const cronStatus = (): Record<string, unknown> =>
      (store.get(RESOURCES.cronjobs, NS, 'cleanup')?.status ?? {}) as Record<string, unknown>;
    expect(cronStatus().lastScheduleTime).toBe('2030-01-01T00:00:00Z');
    await waitFor(
      'job complete and seen',
      () => cronStatus().lastSuccessfulTime !== undefined && cronStatus().active === undefined,
    );

    const suspended = store.get(RESOURCES.cronjobs, NS, 'cleanup')!;
    (suspended.spec as Record<string, unknown>).suspend = true;
    store.update(RESOURCES.cronjobs, suspended);
    expect(
      await controllers.cronJobs.trigger(NS, 'cleanup', { scheduledTime: new Date('2030-01-02T00:00:00Z') }),
    ).toBeUndefined();
    expect(store.list(RESOURCES.jobs, NS).items).toHaveLength(1);
  });

  it('fires on its schedule when a run is due, and not while suspended', async () => {
    createCronJob({ schedule: '* * * * *', suspend: true });
    const markPast = (): void => {
      const cj = store.get(RESOURCES.cronjobs, NS, 'cleanup')!;
      cj.status = { lastScheduleTime: new Date(Date.now() - 5 * 60_000).toISOString().replace(/\.\d+Z$/, 'Z') };
      store.update(RESOURCES.cronjobs, cj);
    };
    markPast();
    await sleep(60);
    expect(store.list(RESOURCES.jobs, NS).items).toHaveLength(0);
    const cj = store.get(RESOURCES.cronjobs, NS, 'cleanup')!;
    (cj.spec as Record<string, unknown>).suspend = false;
    store.update(RESOURCES.cronjobs, cj);
    const [scheduled] = await waitFor('scheduled job', () => {
      const items = store.list(RESOURCES.jobs, NS).items;
      return items.length > 0 && items;
    });
    const minute = Math.floor(Date.now() / 60_000);
    expect([`cleanup-${minute}`, `cleanup-${minute - 1}`]).toContain(scheduled?.metadata.name);
  });

  it('Forbid skips a run while one is active', async () => {
    createCronJob({ concurrencyPolicy: 'Forbid' });
    await controllers.cronJobs.trigger(NS, 'cleanup', { scheduledTime: new Date('2030-01-01T00:00:00Z') });
    expect(
      await controllers.cronJobs.trigger(NS, 'cleanup', { scheduledTime: new Date('2030-01-01T00:01:00Z') }),
    ).toBeUndefined();
    expect(store.list(RESOURCES.jobs, NS).items).toHaveLength(1);
  });

  it('parses five-field schedules and finds the latest due time', () => {
    const every15 = parseCron('*/15 * * * *');
    expect(every15.matches(new Date('2030-01-01T10:45:00Z'))).toBe(true);
    expect(every15.matches(new Date('2030-01-01T10:46:00Z'))).toBe(false);
    const weekdays = parseCron('30 2 * * mon-fri');
    expect(weekdays.matches(new Date('2030-01-07T02:30:00Z'))).toBe(true); // a Monday
    expect(weekdays.matches(new Date('2030-01-06T02:30:00Z'))).toBe(false); // a Sunday
    expect(parseCron('@daily').matches(new Date('2030-01-06T00:00:00Z'))).toBe(true);
    expect(() => parseCron('61 * * * *')).toThrow(/out of range/);
    expect(() => parseCron('* * *')).toThrow(/5 fields/);
    const now = Date.parse('2030-01-01T10:52:30Z');
    expect(lastScheduleBetween(every15, Date.parse('2030-01-01T10:00:00Z'), now)).toBe(
      Date.parse('2030-01-01T10:45:00Z'),
    );
    expect(lastScheduleBetween(every15, Date.parse('2030-01-01T10:45:00Z'), now)).toBeUndefined();
  });
});
