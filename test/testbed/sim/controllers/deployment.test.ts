import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../../../../testbed/sim/resources.js';
import { Store } from '../../../../testbed/sim/store.js';
import type { KubeObject } from '../../../../testbed/sim/types.js';
import type { Controllers } from '../../../../testbed/sim/controllers/index.js';
import {
  deploymentRolloutStatus,
  FakeRuntime,
  imageOf,
  isReady,
  pods,
  podTemplate,
  sleep,
  start,
  waitFor,
} from './fake-runtime.js';

const NS = 'airflow';
const LABELS = { app: 'web' };

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

function createDeployment(
  name: string,
  replicas: number,
  image: string,
  extra: Record<string, unknown> = {},
): KubeObject {
  return store.create(RESOURCES.deployments, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: { replicas, selector: { matchLabels: LABELS }, template: podTemplate(LABELS, image), ...extra },
  });
}

function getDeployment(name: string): KubeObject {
  const d = store.get(RESOURCES.deployments, NS, name);
  if (!d) throw new Error(`deployment ${name} missing`);
  return d;
}

function patchDeployment(name: string, change: (spec: Record<string, unknown>) => void): void {
  const d = getDeployment(name);
  change(d.spec as Record<string, unknown>);
  store.update(RESOURCES.deployments, d);
}

function setImage(name: string, image: string): void {
  patchDeployment(name, (spec) => {
    (
      (spec.template as { spec: { containers: Array<{ image: string }> } }).spec.containers[0] as { image: string }
    ).image = image;
  });
}

function replicaSets(): KubeObject[] {
  return store.list(RESOURCES.replicasets, NS).items;
}

async function rolledOut(name: string): Promise<void> {
  await waitFor(`deployment ${name} rolled out`, () => deploymentRolloutStatus(getDeployment(name)).done);
}

const activePods = (): KubeObject[] => pods(store, NS, (p) => !p.metadata.deletionTimestamp);

describe('Deployment controller', () => {
  it('creates a ReplicaSet <name>-<pod-template-hash> whose pods become ready, with the status rollout status needs', async () => {
    createDeployment('web', 3, 'apache/airflow:3.1.0');
    await rolledOut('web');
    const [rs, ...others] = replicaSets();
    expect(others).toHaveLength(0);
    const hash = rs?.metadata.labels?.['pod-template-hash'];
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]+$/);
    expect(rs?.metadata.name).toBe(`web-${hash}`);
    expect(rs?.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'web', controller: true });
    expect(rs?.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('1');
    const all = pods(store, NS);
    expect(all).toHaveLength(3);
    for (const pod of all) {
      expect(pod.metadata.name).toMatch(new RegExp(`^web-${hash}-[a-z0-9]{5}$`));
      expect(pod.metadata.labels).toEqual({ app: 'web', 'pod-template-hash': hash });
      expect(isReady(pod)).toBe(true);
    }
    const d = getDeployment('web');
    expect(d.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('1');
    expect(d.status).toMatchObject({
      observedGeneration: d.metadata.generation,
      replicas: 3,
      updatedReplicas: 3,
      readyReplicas: 3,
      availableReplicas: 3,
    });
    expect((d.status as Record<string, unknown>).unavailableReplicas).toBeUndefined();
    const conditions = (d.status as { conditions: Array<Record<string, string>> }).conditions;
    expect(conditions.find((c) => c.type === 'Available')).toMatchObject({
      status: 'True',
      reason: 'MinimumReplicasAvailable',
    });
    expect(conditions.find((c) => c.type === 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'NewReplicaSetAvailable',
      message: `ReplicaSet "web-${hash}" has successfully progressed.`,
    });
    // The same template always gives the same hash.
    createDeployment('web2', 1, 'apache/airflow:3.1.0');
    await rolledOut('web2');
    expect(replicaSets().find((r) => r.metadata.name.startsWith('web2-'))?.metadata.labels?.['pod-template-hash']).toBe(
      hash,
    );
  });

  it('rolls a changed template out within maxSurge/maxUnavailable and reports progress like kubectl expects', async () => {
    createDeployment('web', 4, 'apache/airflow:3.1.0');
    await rolledOut('web');
    const messages = new Set<string>();
    let maxActive = 0;
    let minAvailableOld = Infinity;
    const stopWatch = store.watch(RESOURCES.pods, NS, undefined, () => {
      const active = activePods();
      maxActive = Math.max(maxActive, active.length);
      minAvailableOld = Math.min(minAvailableOld, active.filter(isReady).length);
    });
    setImage('web', 'apache/airflow:3.0.2');
    expect(deploymentRolloutStatus(getDeployment('web')).message).toBe(
      'Waiting for deployment spec update to be observed...',
    );
    await waitFor('rollout', () => {
      const status = deploymentRolloutStatus(getDeployment('web'));
      messages.add(status.message);
      return status.done;
    });
    stopWatch();
    // 25% of 4: one extra pod, one unavailable at most.
    expect(maxActive).toBeLessThanOrEqual(5);
    expect(minAvailableOld).toBeGreaterThanOrEqual(3);
    expect(
      [...messages].some((m) =>
        /out of 4 new replicas have been updated|updated replicas are available|old replicas are pending termination/.test(
          m,
        ),
      ),
    ).toBe(true);
    const rsList = replicaSets();
    expect(rsList).toHaveLength(2);
    const newRS = rsList.find((r) => r.metadata.annotations?.['deployment.kubernetes.io/revision'] === '2');
    const oldRS = rsList.find((r) => r.metadata.annotations?.['deployment.kubernetes.io/revision'] === '1');
    expect((newRS?.spec as { replicas: number }).replicas).toBe(4);
    expect((oldRS?.spec as { replicas: number }).replicas).toBe(0);
    await waitFor('old pods gone', () => pods(store, NS).length === 4);
    expect(pods(store, NS).every((p) => imageOf(p) === 'apache/airflow:3.0.2' && isReady(p))).toBe(true);
    const d = getDeployment('web');
    expect(d.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
    const events = store.list(RESOURCES.events, NS, (e) => (e.involvedObject as { name: string }).name === 'web').items;
    expect(
      events.some(
        (e) =>
          e.reason === 'ScalingReplicaSet' &&
          String(e.message).startsWith(`Scaled up replica set ${newRS?.metadata.name}`),
      ),
    ).toBe(true);
    expect(
      events.some(
        (e) =>
          e.reason === 'ScalingReplicaSet' &&
          String(e.message).startsWith(`Scaled down replica set ${oldRS?.metadata.name}`),
      ),
    ).toBe(true);
  });

  it('does not roll a paused Deployment, and rolls it once resumed', async () => {
    createDeployment('web', 2, 'apache/airflow:3.1.0');
    await rolledOut('web');
    const before = pods(store, NS)
      .map((p) => p.metadata.name)
      .sort();
    patchDeployment('web', (spec) => (spec.paused = true));
    setImage('web', 'apache/airflow:3.0.2');
    await waitFor('paused condition', () => {
      const d = getDeployment('web');
      const progressing = (d.status as { conditions: Array<Record<string, string>> }).conditions.find(
        (c) => c.type === 'Progressing',
      );
      return (
        (d.status as { observedGeneration: number }).observedGeneration === d.metadata.generation &&
        progressing?.reason === 'DeploymentPaused' &&
        progressing
      );
    });
    await sleep(100);
    expect(replicaSets()).toHaveLength(1);
    expect(
      pods(store, NS)
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(before);
    expect(pods(store, NS).every((p) => imageOf(p) === 'apache/airflow:3.1.0')).toBe(true);
    // Scaling still applies while paused, to the ReplicaSet there is.
    patchDeployment('web', (spec) => (spec.replicas = 1));
    await waitFor('scaled while paused', () => activePods().length === 1);
    expect(replicaSets()).toHaveLength(1);

    patchDeployment('web', (spec) => (spec.paused = false));
    await rolledOut('web');
    expect(replicaSets()).toHaveLength(2);
    await waitFor(
      'new pods only',
      () => pods(store, NS).length === 1 && pods(store, NS).every((p) => imageOf(p) === 'apache/airflow:3.0.2'),
    );
  });

  it('a held rollout drained to zero and released with replicas restored never starts an old pod', async () => {
    createDeployment('web', 3, 'apache/airflow:3.1.0');
    await rolledOut('web');
    patchDeployment('web', (spec) => {
      spec.paused = true;
      (
        (spec.template as { spec: { containers: Array<{ image: string }> } }).spec.containers[0] as { image: string }
      ).image = 'apache/airflow:3.0.2';
    });
    patchDeployment('web', (spec) => (spec.replicas = 0));
    await waitFor('drained', () => pods(store, NS).length === 0);
    const started: string[] = [];
    const stopWatch = store.watch(RESOURCES.pods, NS, undefined, (e) => {
      if (e.type === 'ADDED') started.push(imageOf(e.object));
    });
    patchDeployment('web', (spec) => {
      spec.paused = false;
      spec.replicas = 3;
    });
    await rolledOut('web');
    stopWatch();
    expect(started).toEqual(['apache/airflow:3.0.2', 'apache/airflow:3.0.2', 'apache/airflow:3.0.2']);
  });

  it('scales to zero and back', async () => {
    createDeployment('web', 2, 'apache/airflow:3.1.0');
    await rolledOut('web');
    patchDeployment('web', (spec) => (spec.replicas = 0));
    await waitFor('no pods', () => pods(store, NS).length === 0);
    await rolledOut('web');
    const zero = getDeployment('web').status as Record<string, unknown>;
    expect(zero.replicas).toBeUndefined();
    expect(zero.availableReplicas).toBeUndefined();
    patchDeployment('web', (spec) => (spec.replicas = 2));
    await rolledOut('web');
    expect(activePods().filter(isReady)).toHaveLength(2);
    expect(replicaSets()).toHaveLength(1);
  });

  it('Recreate stops every old pod before the first new one is created', async () => {
    createDeployment('web', 2, 'apache/airflow:3.1.0', { strategy: { type: 'Recreate' } });
    await rolledOut('web');
    const oldLeftAtFirstNew: number[] = [];
    const stopWatch = store.watch(RESOURCES.pods, NS, undefined, (e) => {
      if (e.type === 'ADDED' && imageOf(e.object) === 'apache/airflow:3.0.2') {
        oldLeftAtFirstNew.push(pods(store, NS, (p) => imageOf(p) === 'apache/airflow:3.1.0').length);
      }
    });
    setImage('web', 'apache/airflow:3.0.2');
    await rolledOut('web');
    stopWatch();
    expect(oldLeftAtFirstNew).toEqual([0, 0]);
  });

  it('re-uses the old ReplicaSet on a rollback and bumps its revision', async () => {
    createDeployment('web', 1, 'apache/airflow:3.1.0');
    await rolledOut('web');
    setImage('web', 'apache/airflow:3.0.2');
    await rolledOut('web');
    setImage('web', 'apache/airflow:3.1.0');
    await rolledOut('web');
    const rsList = replicaSets();
    expect(rsList).toHaveLength(2);
    const current = rsList.find((r) => (r.spec as { replicas: number }).replicas === 1);
    expect(current?.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    expect(getDeployment('web').metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
  });

  it('skips a Deployment without containers and keeps working for the others', async () => {
    store.create(RESOURCES.deployments, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'broken', namespace: NS },
      spec: { replicas: 1, template: { spec: {} } },
    });
    createDeployment('web', 1, 'apache/airflow:3.1.0');
    await rolledOut('web');
    expect(
      replicaSets()
        .map((r) => r.metadata.name)
        .every((n) => n.startsWith('web-')),
    ).toBe(true);
  });
});
