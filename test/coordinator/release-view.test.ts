import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { holdPatch } from '../../src/core/hold.js';
import {
  DRAINED_ANNOTATION,
  RUNNER_LABEL,
  chooseExecPod,
  podsBlockingRelease,
  projectPod,
  projectWorkload,
  readDrainedRecord,
  releaseStateFrom,
  unheldValue,
  type PodRecord,
  type WorkloadRecord,
} from '../../src/coordinator/release-view.js';
import fastJsonPatch from 'fast-json-patch';
import { chartWorkload, type Kind } from '../fixtures/admission/builders.js';

const OP = 'dg-00112233aabbccdd';

function workload(
  kind: Kind,
  component: string,
  version: string,
  replicas = 1,
  annotations: Record<string, string> = {},
): WorkloadRecord {
  const obj = chartWorkload({ kind, component, version, replicas, stored: true, annotations });
  return projectWorkload(kind, obj, DEFAULT_CONFIG)!;
}

function pod(component: string, version: string, overrides: Partial<PodRecord> = {}): PodRecord {
  return {
    namespace: 'airflow',
    name: `airflow-${component}-${version.replace(/\./g, '')}`,
    release: 'airflow',
    component,
    role: 'metadata-db',
    version,
    head: { '3.1.0': 'cc92b33c6709', '3.0.2': '29ce7909c52b' }[version],
    phase: 'Running',
    ready: true,
    terminating: false,
    container: component,
    ...overrides,
  };
}

function held(kind: Kind, obj: Record<string, unknown>): Record<string, unknown> {
  const { patch } = holdPatch(
    kind,
    obj,
    {
      operationId: OP,
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: 'cc92b33c6709',
      toRevision: '29ce7909c52b',
    },
    kind === 'StatefulSet' ? 'CREATE' : 'UPDATE',
  );
  return fastJsonPatch.applyPatch(structuredClone(obj), patch as never, true, false).newDocument;
}

describe('unheldValue: what a drain records is the value without the hold', () => {
  it('a held CronJob is suspended only by the hold: records the previous value', () => {
    const cron = chartWorkload({ kind: 'CronJob', component: 'database-cleanup', version: '3.0.2', stored: true });
    expect(unheldValue(held('CronJob', cron), ['spec', 'suspend'])).toBe(false);
    (cron.spec as { suspend: boolean }).suspend = true;
    expect(unheldValue(held('CronJob', cron), ['spec', 'suspend'])).toBe(true);
  });

  it('a StatefulSet created held at 0 replicas records the replicas it asked for', () => {
    const sts = chartWorkload({ kind: 'StatefulSet', component: 'worker', version: '3.0.2', replicas: 3 });
    const h = held('StatefulSet', sts);
    expect((h.spec as { replicas: number }).replicas).toBe(0);
    expect(unheldValue(h, ['spec', 'replicas'])).toBe(3);
  });

  it('a workload without a hold on that field reads its own value', () => {
    const d = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.0.2',
      replicas: 2,
      stored: true,
    });
    expect(unheldValue(held('Deployment', d), ['spec', 'replicas'])).toBe(2);
    expect(unheldValue(d, ['spec', 'replicas'])).toBe(2);
  });
});

describe('projection', () => {
  it('reads hold and drained annotations of a workload', () => {
    const w = workload('Deployment', 'scheduler', '3.1.0', 0, {
      [DRAINED_ANNOTATION]: JSON.stringify({ operation: OP, replicas: 2 }),
    });
    expect(w).toMatchObject({
      kind: 'Deployment',
      release: 'airflow',
      component: 'scheduler',
      version: '3.1.0',
      head: 'cc92b33c6709',
      replicas: 0,
      drained: { operation: OP, replicas: 2 },
    });
    expect(
      readDrainedRecord({ metadata: { annotations: { [DRAINED_ANNOTATION]: '{"operation":"$(id)"}' } } }),
    ).toBeUndefined();
    expect(readDrainedRecord({ metadata: { annotations: { [DRAINED_ANNOTATION]: 'not json' } } })).toBeUndefined();
  });

  it('reads a runner pod by its label even without release labels', () => {
    const runner = projectPod(
      {
        metadata: {
          name: 'airflow-downgrade-guard-runner-abc',
          namespace: 'airflow',
          labels: { [RUNNER_LABEL]: 'airflow' },
        },
        spec: { containers: [{ name: 'api-server', image: 'apache/airflow:3.1.0' }] },
        status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
      },
      DEFAULT_CONFIG,
    );
    expect(runner).toMatchObject({ release: 'airflow', runnerFor: 'airflow', version: '3.1.0', ready: true });
  });
});

describe('choosing the exec pod', () => {
  it('api-server before webserver before scheduler, only Running, Ready and on the newer head', () => {
    const pods = [
      pod('scheduler', '3.1.0'),
      pod('api-server', '3.1.0', { ready: false }),
      pod('webserver', '3.1.0'),
      pod('api-server', '3.0.2'),
      pod('triggerer', '3.1.0', { terminating: true }),
    ];
    expect(chooseExecPod(pods, 'airflow', 'airflow', 'cc92b33c6709')?.component).toBe('webserver');
    expect(chooseExecPod(pods.slice(0, 2), 'airflow', 'airflow', 'cc92b33c6709')?.component).toBe('scheduler');
    expect(
      chooseExecPod([pod('statsd', '3.1.0', { role: 'no-metadata-db' })], 'airflow', 'airflow', 'cc92b33c6709'),
    ).toBeUndefined();
    expect(chooseExecPod(pods, 'other', 'airflow', 'cc92b33c6709')).toBeUndefined();
  });
});

describe('pods blocking the release', () => {
  it('every pod of the release not on the target head, unknown versions included, finished pods not', () => {
    const pods = [
      pod('scheduler', '3.1.0'),
      pod('worker', '3.0.2'),
      pod('worker', '3.1.0', { name: 'task', phase: 'Succeeded' }),
      pod('triggerer', 'x', { version: undefined, head: undefined, name: 'unknown' }),
      pod('runner', '3.1.0', { name: 'runner', role: 'metadata-db', runnerFor: 'airflow' }),
      pod('statsd', '3.1.0', { role: 'no-metadata-db', name: 'statsd' }),
    ];
    expect(
      podsBlockingRelease(pods, 'airflow', 'airflow', '29ce7909c52b')
        .map((p) => p.name)
        .sort(),
    ).toEqual(['airflow-scheduler-310', 'runner', 'unknown']);
  });
});

describe('release state for admission', () => {
  it('running version from running pods, else from workloads with replicas', () => {
    const workloads = [
      workload('Deployment', 'scheduler', '3.1.0', 2),
      workload('Deployment', 'api-server', '3.1.0', 1),
    ];
    expect(
      releaseStateFrom('airflow', 'airflow', workloads, [pod('api-server', '3.0.2')], undefined, undefined)
        .runningVersion,
    ).toBe('3.0.2');
    const state = releaseStateFrom('airflow', 'airflow', workloads, [], undefined, 'cc92b33c6709');
    expect(state).toMatchObject({ runningVersion: '3.1.0', dbRevision: 'cc92b33c6709' });
    expect(state.workloads).toEqual([
      { kind: 'Deployment', name: 'airflow-scheduler', component: 'scheduler', replicas: 2, version: '3.1.0' },
      { kind: 'Deployment', name: 'airflow-api-server', component: 'api-server', replicas: 1, version: '3.1.0' },
    ]);
  });

  // Regression: a release scaled to 0 looked like a new install, so a Job-first (Helm pre-upgrade)
  // downgrade passed untouched and ran the older image's `db migrate` on the newer schema.
  it('a release scaled to 0 still has the version its workloads declare', () => {
    const workloads = [
      workload('Deployment', 'scheduler', '3.1.0', 0),
      workload('Deployment', 'api-server', '3.1.0', 0),
    ];
    expect(releaseStateFrom('airflow', 'airflow', workloads, [], undefined, undefined).runningVersion).toBe('3.1.0');
  });

  it('held workloads do not count as running; drained ones report their recorded replicas', () => {
    const heldApi = workload('Deployment', 'api-server', '3.0.2', 1, {
      'airflow-downgrade-guard/hold': '{"kind":"Deployment","changes":[]}',
      'airflow-downgrade-guard/operation': OP,
    });
    const drained = workload('Deployment', 'scheduler', '3.1.0', 0, {
      [DRAINED_ANNOTATION]: JSON.stringify({ operation: OP, replicas: 2 }),
    });
    const state = releaseStateFrom('airflow', 'airflow', [heldApi, drained], [], undefined, undefined);
    expect(state.runningVersion).toBe('3.1.0');
    expect(state.workloads?.find((w) => w.name === 'airflow-scheduler')?.replicas).toBe(2);
  });
});
