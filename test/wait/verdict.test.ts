import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { newOperation, type OperationState, type Phase } from '../../src/coordinator/operation.js';
import { ANNOTATIONS } from '../../src/core/config.js';
import { holdPatch } from '../../src/core/hold.js';
import type { JsonObject, WorkloadKind } from '../../src/core/objects.js';
import { rolloutOf } from '../../src/wait/rollout.js';
import { releaseVerdict, type ReleaseSnapshot, type WorkloadSnapshot } from '../../src/wait/verdict.js';
import { chartWorkload } from '../fixtures/admission/builders.js';

const OP = 'dg-00112233aabbccdd';

function operation(phase: Phase, extra: Partial<OperationState> = {}): OperationState {
  const op = newOperation({
    id: OP,
    namespace: 'airflow',
    release: 'airflow',
    fromVersion: '3.1.0',
    toVersion: '3.0.2',
    fromRevision: 'cc92b33c6709',
    toRevision: '29ce7909c52b',
    openedBy: 'admin',
    now: new Date('2026-12-03T10:00:00Z'),
  });
  return { ...op, phase, ...extra };
}

/** A workload whose status says it rolled out its spec (generation observed, every pod updated and ready). */
function rolledOut(kind: WorkloadKind, component: string, replicas = 2): WorkloadSnapshot {
  const object = chartWorkload({ kind, component, version: '3.0.2', replicas, stored: true }) as JsonObject;
  const generation = (object.metadata as { generation?: number }).generation ?? 1;
  const status: Record<WorkloadKind, JsonObject> = {
    Deployment: {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
    },
    StatefulSet: {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      currentRevision: 'r2',
      updateRevision: 'r2',
    },
    Job: { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] },
    CronJob: {},
  };
  return { kind, name: `airflow-${component}`, object: { ...object, status: status[kind] } };
}

function withStatus(w: WorkloadSnapshot, status: JsonObject): WorkloadSnapshot {
  return { ...w, object: { ...w.object, status: { ...(w.object.status as JsonObject), ...status } } };
}

function withSpec(w: WorkloadSnapshot, spec: JsonObject): WorkloadSnapshot {
  return { ...w, object: { ...w.object, spec: { ...(w.object.spec as JsonObject), ...spec } } };
}

function held(w: WorkloadSnapshot, options: { namesOperation: boolean } = { namesOperation: true }): WorkloadSnapshot {
  const { patch } = holdPatch(
    w.kind,
    w.object,
    { operationId: OP, fromVersion: '3.1.0', toVersion: '3.0.2', toRevision: '29ce7909c52b' },
    'UPDATE',
  );
  const object = fastJsonPatch.applyPatch(structuredClone(w.object), patch as never).newDocument as JsonObject;
  if (!options.namesOperation)
    delete (object.metadata as { annotations: Record<string, string> }).annotations[ANNOTATIONS.operation];
  return { ...w, object };
}

function drained(w: WorkloadSnapshot): WorkloadSnapshot {
  const metadata = w.object.metadata as JsonObject;
  const annotations = {
    ...(metadata.annotations as Record<string, string> | undefined),
    [ANNOTATIONS.drained]: JSON.stringify({ operation: OP, replicas: 2 }),
  };
  return { ...w, object: { ...w.object, metadata: { ...metadata, annotations } } };
}

const RELEASE = (): WorkloadSnapshot[] => [
  rolledOut('Deployment', 'scheduler'),
  rolledOut('Deployment', 'api-server'),
  rolledOut('StatefulSet', 'worker'),
  rolledOut('Job', 'run-airflow-migrations'),
  rolledOut('CronJob', 'database-cleanup'),
];

function snapshot(workloads: WorkloadSnapshot[], extra: Partial<ReleaseSnapshot> = {}): ReleaseSnapshot {
  return { namespace: 'airflow', release: 'airflow', workloads, ...extra };
}

describe('rolloutOf', () => {
  const deploy = rolledOut('Deployment', 'scheduler', 3);
  const sts = rolledOut('StatefulSet', 'worker', 3);
  const job = rolledOut('Job', 'run-airflow-migrations');

  it('a Deployment: done only when its controller observed the spec and every pod is updated and available', () => {
    expect(rolloutOf('Deployment', deploy.object)).toEqual({ state: 'done' });
    expect(rolloutOf('Deployment', withSpec(deploy, { paused: true }).object)).toEqual({
      state: 'progressing',
      detail: 'paused (spec.paused=true)',
    });
    expect(rolloutOf('Deployment', withStatus(deploy, { observedGeneration: 0 }).object)).toMatchObject({
      state: 'progressing',
      detail: expect.stringMatching(/has not observed generation \d+ yet/),
    });
    expect(rolloutOf('Deployment', withStatus(deploy, { updatedReplicas: 1 }).object)).toEqual({
      state: 'progressing',
      detail: '1 of 3 pods updated',
    });
    expect(rolloutOf('Deployment', withStatus(deploy, { replicas: 4 }).object)).toEqual({
      state: 'progressing',
      detail: '1 old pods pending termination',
    });
    expect(rolloutOf('Deployment', withStatus(deploy, { availableReplicas: 2 }).object)).toEqual({
      state: 'progressing',
      detail: '2 of 3 updated pods available',
    });
    expect(
      rolloutOf(
        'Deployment',
        withStatus(deploy, {
          conditions: [
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              message: 'ReplicaSet "x" has timed out progressing.',
            },
          ],
        }).object,
      ),
    ).toEqual({
      state: 'failed',
      detail: 'exceeded its progress deadline: ReplicaSet "x" has timed out progressing.',
    });
  });

  it('a Deployment without spec.replicas counts one replica', () => {
    const object = structuredClone(deploy.object) as { spec: JsonObject; status: JsonObject };
    delete object.spec.replicas;
    object.status = { ...object.status, replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
    expect(rolloutOf('Deployment', object)).toEqual({ state: 'done' });
  });

  it('a StatefulSet: partition, revisions and readiness as kubectl rollout status reads them', () => {
    expect(rolloutOf('StatefulSet', sts.object)).toEqual({ state: 'done' });
    expect(rolloutOf('StatefulSet', withStatus(sts, { observedGeneration: 0 }).object).state).toBe('progressing');
    expect(
      rolloutOf(
        'StatefulSet',
        withSpec(sts, { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2147483647 } } }).object,
      ),
    ).toEqual({
      state: 'progressing',
      detail: 'partition 2147483647 keeps every pod on the previous revision',
    });
    const partial = withSpec(sts, { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } } });
    expect(rolloutOf('StatefulSet', withStatus(partial, { updatedReplicas: 1 }).object)).toEqual({
      state: 'progressing',
      detail: '1 of 2 pods updated (partition 1)',
    });
    expect(rolloutOf('StatefulSet', withStatus(partial, { updatedReplicas: 2, currentRevision: 'r1' }).object)).toEqual(
      { state: 'done' },
    );
    expect(rolloutOf('StatefulSet', withStatus(sts, { updatedReplicas: 2 }).object)).toEqual({
      state: 'progressing',
      detail: '2 of 3 pods updated',
    });
    expect(rolloutOf('StatefulSet', withStatus(sts, { currentRevision: 'r1' }).object)).toEqual({
      state: 'progressing',
      detail: 'rolling out revision r2',
    });
    expect(rolloutOf('StatefulSet', withStatus(sts, { readyReplicas: 2 }).object)).toEqual({
      state: 'progressing',
      detail: '2 of 3 pods ready',
    });
    const onDelete = withSpec(sts, { updateStrategy: { type: 'OnDelete' } });
    expect(
      rolloutOf('StatefulSet', withStatus(onDelete, { updatedReplicas: 0, currentRevision: 'r1' }).object),
    ).toEqual({ state: 'done' });
  });

  it('a Job: done when complete, failed with its reason, otherwise running or suspended', () => {
    expect(rolloutOf('Job', job.object)).toEqual({ state: 'done' });
    expect(
      rolloutOf(
        'Job',
        withStatus(job, {
          conditions: [
            {
              type: 'Failed',
              status: 'True',
              reason: 'BackoffLimitExceeded',
              message: 'Job has reached the specified backoff limit',
            },
          ],
        }).object,
      ),
    ).toEqual({
      state: 'failed',
      detail: 'failed (BackoffLimitExceeded): Job has reached the specified backoff limit',
    });
    expect(rolloutOf('Job', withSpec(withStatus(job, { conditions: [] }), { suspend: true }).object)).toEqual({
      state: 'progressing',
      detail: 'suspended (spec.suspend=true)',
    });
    expect(rolloutOf('Job', withStatus(job, { conditions: [], succeeded: 0 }).object)).toEqual({
      state: 'progressing',
      detail: 'running (0 of 1 completions)',
    });
  });

  it('a CronJob has nothing to roll out; anything being deleted is not done', () => {
    expect(rolloutOf('CronJob', rolledOut('CronJob', 'database-cleanup').object)).toEqual({ state: 'done' });
    const deleting = {
      ...deploy.object,
      metadata: { ...(deploy.object.metadata as JsonObject), deletionTimestamp: '2026-12-03T10:00:00Z' },
    };
    expect(rolloutOf('Deployment', deleting)).toEqual({ state: 'progressing', detail: 'being deleted' });
  });
});

describe('releaseVerdict', () => {
  it('done: no operation, no hold, everything rolled out', () => {
    expect(releaseVerdict(snapshot(RELEASE()))).toEqual({
      state: 'done',
      summary: 'release airflow/airflow: 5 workloads rolled out, none held',
    });
  });

  it('done after a finished operation, naming it', () => {
    expect(releaseVerdict(snapshot(RELEASE(), { operation: operation('done') }))).toEqual({
      state: 'done',
      summary: `release airflow/airflow: 5 workloads rolled out, none held; last operation ${OP} (3.1.0 -> 3.0.2) done`,
    });
    expect(releaseVerdict(snapshot(RELEASE(), { operation: operation('cancelled') })).state).toBe('done');
  });

  it.each(['confirm', 'downgrade', 'verify', 'drain', 'release'] as const)(
    'an open operation (%s) is not done, whatever the workloads say',
    (phase) => {
      const verdict = releaseVerdict(snapshot(RELEASE(), { operation: operation(phase) }));
      expect(verdict.state).toBe('waiting');
      expect(verdict.state === 'waiting' && verdict.reasons[0]).toMatch(
        new RegExp(`^operation ${OP} \\(3\\.1\\.0 -> 3\\.0\\.2\\) is at ${phase}: `),
      );
    },
  );

  it('a held operation ends the wait with its reason', () => {
    const op = operation('held', {
      heldFrom: 'downgrade',
      heldReason: 'downgrade failed in pod airflow-api-server-x: deadlock detected; schema is unchanged at 3.1.0',
    });
    const workloads = RELEASE().map((w) => (w.kind === 'Job' ? w : held(w)));
    expect(releaseVerdict(snapshot(workloads, { operation: op }))).toEqual({
      state: 'held',
      reason: `operation ${OP} (3.1.0 -> 3.0.2) is held at downgrade: downgrade failed in pod airflow-api-server-x: deadlock detected; schema is unchanged at 3.1.0`,
    });
  });

  it('an aborted operation ends the wait while workloads are still held for it', () => {
    const workloads = RELEASE();
    workloads[0] = held(workloads[0]!);
    expect(releaseVerdict(snapshot(workloads, { operation: operation('aborted') }))).toEqual({
      state: 'aborted',
      reason: `operation ${OP} (3.1.0 -> 3.0.2) was aborted; held until changed back to 3.1.0: deployment/airflow-scheduler`,
    });
    // Changed back: nothing held any more, and the release rolled out.
    expect(releaseVerdict(snapshot(RELEASE(), { operation: operation('aborted') })).state).toBe('done');
  });

  it('a hold that names no operation ends the wait', () => {
    const workloads = RELEASE();
    workloads[1] = held(workloads[1]!, { namesOperation: false });
    expect(releaseVerdict(snapshot(workloads))).toEqual({
      state: 'held',
      reason: 'held by the guard with no operation: deployment/airflow-api-server (kubectl describe shows why)',
    });
  });

  it('a change admitted with a hold whose operation record is not written yet is not done', () => {
    const workloads = RELEASE();
    workloads[0] = held(workloads[0]!);
    expect(releaseVerdict(snapshot(workloads))).toEqual({
      state: 'waiting',
      reasons: [`deployment/airflow-scheduler is held for operation ${OP}, which has not opened yet`],
    });
  });

  it('a hold naming an operation that already ended is not done either', () => {
    const workloads = RELEASE();
    workloads[0] = held(workloads[0]!);
    expect(releaseVerdict(snapshot(workloads, { operation: operation('done') }))).toEqual({
      state: 'waiting',
      reasons: [
        `deployment/airflow-scheduler is held for operation ${OP}, which ended (done); waiting for the guard to take it up`,
      ],
    });
  });

  it('a change applied but not yet observed by its controller is not done', () => {
    const workloads = RELEASE();
    workloads[2] = withStatus(workloads[2]!, { observedGeneration: 0 });
    const verdict = releaseVerdict(snapshot(workloads));
    expect(verdict).toMatchObject({
      state: 'waiting',
      reasons: [expect.stringMatching(/^statefulset\/airflow-worker: its controller has not observed generation/)],
    });
  });

  it('a workload drained and waiting for its own update is not done', () => {
    const workloads = RELEASE();
    workloads[0] = drained(withSpec(workloads[0]!, { replicas: 0 }));
    expect(releaseVerdict(snapshot(workloads, { operation: operation('done') }))).toEqual({
      state: 'waiting',
      reasons: ['deployment/airflow-scheduler is drained, kept at 0 until its own update arrives'],
    });
  });

  it('lists every workload still rolling out', () => {
    const workloads = RELEASE();
    workloads[0] = withStatus(workloads[0]!, { updatedReplicas: 1 });
    workloads[3] = withStatus(workloads[3]!, { conditions: [], succeeded: 0 });
    expect(releaseVerdict(snapshot(workloads))).toEqual({
      state: 'waiting',
      reasons: [
        'deployment/airflow-scheduler: 1 of 2 pods updated',
        'job/airflow-run-airflow-migrations: running (0 of 1 completions)',
      ],
    });
  });

  it('a failed workload ends the wait even while others still roll out', () => {
    const workloads = RELEASE();
    workloads[0] = withStatus(workloads[0]!, { updatedReplicas: 1 });
    workloads[3] = withStatus(workloads[3]!, {
      conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }],
    });
    expect(releaseVerdict(snapshot(workloads))).toEqual({
      state: 'failed',
      reason: 'job/airflow-run-airflow-migrations failed (BackoffLimitExceeded)',
    });
  });

  it('no workload of the release yet is not done', () => {
    expect(releaseVerdict(snapshot([]))).toEqual({
      state: 'waiting',
      reasons: ['no workload of release airflow/airflow found yet'],
    });
  });

  it('an unreadable operation record ends the wait with the reason', () => {
    expect(releaseVerdict(snapshot(RELEASE(), { operationProblem: 'operation state is not JSON' }))).toEqual({
      state: 'failed',
      reason: 'the operation record of airflow/airflow cannot be read: operation state is not JSON',
    });
  });
});
