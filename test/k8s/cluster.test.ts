// Cluster.patchUnchanged against the simulated API server, which answers a failed JSON Patch `test`
// 422 as kube-apiserver does: a write on a stale read is the conflict (409) callers handle, not an
// error the coordinator logged as "reconcile failed" (seen on the real control plane).
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, isConflict } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { startSimCluster, type SimCluster } from '../../testbed/sim/cluster.js';

let sim: SimCluster;
let rest: KubeRest;
let cluster: Cluster;

beforeAll(async () => {
  sim = await startSimCluster();
  await sim.controllers.stop();
  sim.store.create(RESOURCES.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sim.api.kubeconfig());
  rest = new KubeRest(kubeConfig);
  cluster = new Cluster(rest, { attempts: 1, baseDelayMs: 10 });
});

afterAll(async () => {
  rest.close();
  await sim.stop();
});

const configMap = (name: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'a' },
  data: { k: 'one' },
});

async function failure(p: Promise<unknown>): Promise<{ code?: number; message: string }> {
  try {
    await p;
  } catch (error) {
    return error as { code?: number; message: string };
  }
  throw new Error('the write went through');
}

describe('Cluster.patchUnchanged', () => {
  it('patches the object as it was read', async () => {
    const read = await cluster.create('ConfigMap', 'a', configMap('fresh'));
    const patched = await cluster.patchUnchanged('ConfigMap', read, [{ op: 'replace', path: '/data/k', value: 'two' }]);
    expect(patched).toMatchObject({ data: { k: 'two' } });
  });

  it('a read the object moved on from: a conflict naming both resourceVersions, nothing written', async () => {
    const read = await cluster.create('ConfigMap', 'a', configMap('stale'));
    const moved = await cluster.patchUnchanged<typeof read>('ConfigMap', read, [
      { op: 'replace', path: '/data/k', value: 'two' },
    ]);
    const error = await failure(
      cluster.patchUnchanged('ConfigMap', read, [{ op: 'replace', path: '/data/k', value: 'three' }]),
    );
    expect(isConflict(error)).toBe(true);
    expect(error.message).toContain(
      `ConfigMap stale changed since it was read (resourceVersion ${String((read as { metadata: { resourceVersion: string } }).metadata.resourceVersion)} -> ${String((moved as { metadata: { resourceVersion: string } }).metadata.resourceVersion)})`,
    );
    expect(await cluster.get('ConfigMap', 'a', 'stale')).toMatchObject({ data: { k: 'two' } });
  });

  it('an object deleted since it was read: not found, nothing created', async () => {
    const read = await cluster.create('ConfigMap', 'a', configMap('gone'));
    await cluster.delete('ConfigMap', 'a', 'gone');
    const error = await failure(
      cluster.patchUnchanged('ConfigMap', read, [{ op: 'replace', path: '/data/k', value: 'two' }]),
    );
    expect(error.code).toBe(404);
    expect(await cluster.find('ConfigMap', 'a', 'gone')).toBeUndefined();
  });

  it('an invalid patch of an unchanged object stays the 422 it is', async () => {
    const read = await cluster.create('ConfigMap', 'a', configMap('invalid'));
    const error = await failure(cluster.patchUnchanged('ConfigMap', read, [{ op: 'remove', path: '/data/missing' }]));
    expect(error.code).toBe(422);
  });
});
