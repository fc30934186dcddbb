import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../../../../testbed/sim/resources.js';
import { Store } from '../../../../testbed/sim/store.js';
import type { KubeObject } from '../../../../testbed/sim/types.js';
import type { Controllers } from '../../../../testbed/sim/controllers/index.js';
import {
  deleteGracefully,
  FakeRuntime,
  imageOf,
  isReady,
  pods,
  podTemplate,
  sleep,
  start,
  statefulSetRolloutStatus,
  waitFor,
} from './fake-runtime.js';

const NS = 'airflow';
const LABELS = { component: 'worker' };

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

function createSts(replicas: number, image: string, extra: Record<string, unknown> = {}): KubeObject {
  return store.create(RESOURCES.statefulsets, {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'worker', namespace: NS },
    spec: {
      replicas,
      serviceName: 'worker',
      selector: { matchLabels: LABELS },
      template: podTemplate(LABELS, image),
      ...extra,
    },
  });
}

function sts(): KubeObject {
  const found = store.get(RESOURCES.statefulsets, NS, 'worker');
  if (!found) throw new Error('statefulset missing');
  return found;
}

function patchSts(change: (spec: Record<string, unknown>) => void): void {
  const current = sts();
  change(current.spec as Record<string, unknown>);
  store.update(RESOURCES.statefulsets, current);
}

function setImage(image: string): void {
  patchSts((spec) => {
    (
      (spec.template as { spec: { containers: Array<{ image: string }> } }).spec.containers[0] as { image: string }
    ).image = image;
  });
}

const status = (): Record<string, unknown> => (sts().status ?? {}) as Record<string, unknown>;
const pod = (ordinal: number): KubeObject | undefined => store.get(RESOURCES.pods, NS, `worker-${ordinal}`);
const imagesByOrdinal = (): string[] =>
  pods(store, NS)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map(imageOf);

async function allReady(replicas: number): Promise<void> {
  await waitFor(`${replicas} ready`, () => {
    const s = status();
    return (
      s.readyReplicas === replicas &&
      pods(store, NS).length === replicas &&
      s.observedGeneration === sts().metadata.generation
    );
  });
}

describe('StatefulSet controller', () => {
  it('creates ordinal pods in order, each after the previous one is Ready', async () => {
    runtime.behaviour = (req) => ({ ready: req.pod.metadata.name !== 'worker-0' });
    createSts(3, 'apache/airflow:3.1.0');
    await waitFor('worker-0 running', () => (pod(0)?.status as { phase?: string })?.phase === 'Running');
    await sleep(80);
    expect(pod(1)).toBeUndefined();
    runtime.latest('worker-0', 'main')!.readyFlag = true;
    await allReady(3);
    const p2 = pod(2)!;
    expect(p2.metadata.labels).toMatchObject({
      component: 'worker',
      'statefulset.kubernetes.io/pod-name': 'worker-2',
      'apps.kubernetes.io/pod-index': '2',
    });
    expect(p2.metadata.labels?.['controller-revision-hash']).toBe(status().updateRevision);
    expect((p2.spec as Record<string, unknown>).hostname).toBe('worker-2');
    expect((p2.spec as Record<string, unknown>).subdomain).toBe('worker');
    expect(status()).toMatchObject({
      replicas: 3,
      readyReplicas: 3,
      currentReplicas: 3,
      updatedReplicas: 3,
      availableReplicas: 3,
    });
    expect(status().currentRevision).toBe(status().updateRevision);
    expect(statefulSetRolloutStatus(sts())).toEqual({
      done: true,
      message: `statefulset rolling update complete 3 pods at revision ${String(status().updateRevision)}...`,
    });
    const revisions = store.list(RESOURCES.controllerrevisions, NS).items;
    expect(revisions.map((r) => r.metadata.name)).toEqual([status().updateRevision]);
  });

  it('Parallel management creates all pods at once', async () => {
    runtime.behaviour = () => ({ ready: false });
    createSts(3, 'apache/airflow:3.1.0', { podManagementPolicy: 'Parallel' });
    await waitFor('three pods', () => pods(store, NS).length === 3);
  });

  it('rolls from the highest ordinal down and only to the partition', async () => {
    createSts(3, 'apache/airflow:3.1.0', {
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } },
    });
    await allReady(3);
    const oldRevision = status().currentRevision;
    setImage('apache/airflow:3.0.2');
    await waitFor(
      'pod 2 updated',
      () => imageOf(pod(2) ?? ({ spec: { containers: [] } } as never)) === 'apache/airflow:3.0.2' && isReady(pod(2)!),
    );
    await allReady(3);
    await sleep(60);
    expect(imagesByOrdinal()).toEqual(['apache/airflow:3.1.0', 'apache/airflow:3.1.0', 'apache/airflow:3.0.2']);
    expect(status()).toMatchObject({ currentRevision: oldRevision, currentReplicas: 2, updatedReplicas: 1 });
    expect(status().updateRevision).not.toBe(oldRevision);
    expect(statefulSetRolloutStatus(sts()).message).toBe(
      'partitioned roll out complete: 1 new pods have been updated...',
    );

    // A pod below the partition that is deleted comes back at the current (old) revision.
    deleteGracefully(store, pod(0)!, 1);
    await waitFor('pod 0 recreated', () => pod(0) && !pod(0)!.metadata.deletionTimestamp && isReady(pod(0)!));
    expect(imageOf(pod(0)!)).toBe('apache/airflow:3.1.0');

    const order: string[] = [];
    const stopWatch = store.watch(RESOURCES.pods, NS, undefined, (e) => {
      if (e.type === 'ADDED') order.push(e.object.metadata.name);
    });
    patchSts((spec) => (spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { partition: 0 } }));
    await waitFor('all updated', () => {
      const s = status();
      return s.updatedReplicas === 3 && s.readyReplicas === 3 && s.currentRevision === s.updateRevision;
    });
    stopWatch();
    expect(order).toEqual(['worker-1', 'worker-0']);
    expect(imagesByOrdinal()).toEqual(['apache/airflow:3.0.2', 'apache/airflow:3.0.2', 'apache/airflow:3.0.2']);
    expect(statefulSetRolloutStatus(sts()).done).toBe(true);
  });

  it('holds with a partition above the replica count; scaling to zero makes the held revision current, as for real', async () => {
    createSts(2, 'apache/airflow:3.1.0');
    await allReady(2);
    patchSts((spec) => (spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { partition: 5 } }));
    setImage('apache/airflow:3.0.2');
    await sleep(80);
    expect(imagesByOrdinal()).toEqual(['apache/airflow:3.1.0', 'apache/airflow:3.1.0']);
    expect(statefulSetRolloutStatus(sts()).done).toBe(true); // 0 of (2 - 5) needed
    // Scale down goes from the highest ordinal.
    patchSts((spec) => (spec.replicas = 1));
    await waitFor('worker-1 gone', () => pod(1) === undefined);
    expect(pod(0)).toBeDefined();
    patchSts((spec) => (spec.replicas = 0));
    await waitFor('no pods', () => pods(store, NS).length === 0 && status().replicas === 0);
    await waitFor('update revision current', () => status().currentRevision === status().updateRevision);
    patchSts((spec) => (spec.replicas = 1));
    await allReady(1);
    expect(imageOf(pod(0)!)).toBe('apache/airflow:3.0.2');
  });

  it('OnDelete updates a pod only when it is deleted', async () => {
    createSts(2, 'apache/airflow:3.1.0', { updateStrategy: { type: 'OnDelete' } });
    await allReady(2);
    setImage('apache/airflow:3.0.2');
    await waitFor('observed', () => status().observedGeneration === sts().metadata.generation);
    await sleep(80);
    expect(imagesByOrdinal()).toEqual(['apache/airflow:3.1.0', 'apache/airflow:3.1.0']);
    expect(status().updatedReplicas ?? 0).toBe(0);
    deleteGracefully(store, pod(1)!, 1);
    await waitFor('worker-1 replaced', () => pod(1) && imageOf(pod(1)!) === 'apache/airflow:3.0.2' && isReady(pod(1)!));
    expect(imageOf(pod(0)!)).toBe('apache/airflow:3.1.0');
    expect(status()).toMatchObject({ updatedReplicas: 1, currentReplicas: 1 });
  });
});
