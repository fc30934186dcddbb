// WatchCache's release index against the simulated API server: records are grouped as they are
// listed, added, moved between groups and deleted, and a group's revision changes with each.
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/postgres.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { WatchCache } from '../../src/k8s/watch-cache.js';
import { startSimCluster, type SimCluster } from '../../testbed/sim/cluster.js';
import { RESOURCES } from '../../testbed/sim/resources.js';

interface Rec {
  namespace: string;
  name: string;
  release: string;
}

function project(obj: unknown): Rec | undefined {
  const meta = (obj as { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }).metadata;
  const release = meta?.labels?.release;
  if (!meta?.name || !meta.namespace || !release) return undefined;
  return { namespace: meta.namespace, name: meta.name, release };
}

function configMap(namespace: string, name: string, release?: string) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, ...(release ? { labels: { release } } : {}) },
    data: {},
  };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('WatchCache groupBy index', () => {
  let sim: SimCluster;
  let rest: KubeRest;
  let cache: WatchCache<Rec>;
  const names = (group: string) => [...cache.group(group)].map((r) => r.name).sort();

  beforeAll(async () => {
    sim = await startSimCluster();
    await sim.controllers.stop();
    for (const ns of ['a', 'b'])
      sim.store.create(RESOURCES.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    sim.store.create(RESOURCES.configmaps, configMap('a', 'one', 'r1'));
    sim.store.create(RESOURCES.configmaps, configMap('a', 'two', 'r1'));
    sim.store.create(RESOURCES.configmaps, configMap('b', 'one', 'r1'));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(sim.api.kubeconfig());
    rest = new KubeRest(kubeConfig);
    cache = new WatchCache<Rec>(kubeConfig, rest, {
      name: 'ConfigMap',
      paths: ['/api/v1/configmaps'],
      project,
      groupBy: (r) => `${r.namespace}/${r.release}`,
    });
    cache.start();
    await until('synced', () => cache.ready);
  });

  afterAll(async () => {
    cache.stop();
    rest.close();
    await sim.stop();
  });

  it('groups listed records by key; other groups and unknown keys are empty', () => {
    expect(names('a/r1')).toEqual(['one', 'two']);
    expect(names('b/r1')).toEqual(['one']);
    expect(names('a/nope')).toEqual([]);
    expect(cache.groupRevision('a/nope')).toBe(0);
  });

  it('follows watch events: add, relabel to another group, unlabel, delete', async () => {
    const before = cache.groupRevision('a/r1');
    sim.store.create(RESOURCES.configmaps, configMap('a', 'three', 'r1'));
    await until('added', () => names('a/r1').includes('three'));
    const added = cache.groupRevision('a/r1');
    expect(added).toBeGreaterThan(before);
    expect(cache.groupRevision('b/r1')).toBeLessThan(added);

    const stored = sim.store.get(RESOURCES.configmaps, 'a', 'three')!;
    sim.store.update(RESOURCES.configmaps, { ...stored, metadata: { ...stored.metadata, labels: { release: 'r2' } } });
    await until('moved', () => names('a/r2').includes('three'));
    expect(names('a/r1')).toEqual(['one', 'two']);
    expect(cache.groupRevision('a/r1')).toBeGreaterThan(added);

    // A record the projection no longer keeps leaves its group; an emptied group is gone.
    const moved = sim.store.get(RESOURCES.configmaps, 'a', 'three')!;
    sim.store.update(RESOURCES.configmaps, { ...moved, metadata: { ...moved.metadata, labels: {} } });
    await until('unlabelled', () => names('a/r2').length === 0);
    expect(cache.groupRevision('a/r2')).toBe(0);

    sim.store.remove(RESOURCES.configmaps, 'b', 'one');
    await until('deleted', () => names('b/r1').length === 0);
    expect(cache.size).toBe(2);
  });

  it('an edit that keeps the group replaces the record in place', async () => {
    const revision = cache.groupRevision('a/r1');
    const stored = sim.store.get(RESOURCES.configmaps, 'a', 'one')!;
    sim.store.update(RESOURCES.configmaps, { ...stored, data: { changed: 'yes' } });
    await until('revised', () => cache.groupRevision('a/r1') > revision);
    expect(names('a/r1')).toEqual(['one', 'two']);
  });
});

describe('WatchCache with no reachable API server', () => {
  it('says once what is unreachable and why, for all caches, then retries quietly with backoff', async () => {
    const port = await freePort();
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const rest = new KubeRest(kubeConfig, 1_000);
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) },
    );
    const caches = ['deployments', 'statefulsets', 'pods'].map(
      (plural) =>
        new WatchCache<Rec>(kubeConfig, rest, {
          name: plural,
          paths: [`/apis/apps/v1/${plural}`],
          project,
          logger,
          minBackoffMs: 5,
          maxBackoffMs: 20,
        }),
    );
    try {
      for (const c of caches) c.start();
      await until('every cache retried several times', () => caches.every((c) => c.relists >= 5));
    } finally {
      for (const c of caches) c.stop();
      rest.close();
    }
    const warnings = lines.filter((l) => l.level >= 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^cannot reach the Kubernetes API at https://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\); retrying quietly with backoff \\(at most 20 ms apart\\) until it answers$`,
        ),
      ),
    ]);
  });
});
