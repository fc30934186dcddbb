// ReleaseStateCache: admission's release state from the caches' release index, the same as
// releaseStateFrom over every record, recomputed only when one of the release's records changes.
import { describe, expect, it } from 'vitest';
import {
  releaseKeyOf,
  releaseStateFrom,
  ReleaseStateCache,
  type PodRecord,
  type ReleaseRecords,
  type WorkloadRecord,
} from '../../src/coordinator/release-view.js';

/** A minimal indexed cache: what WatchCache with groupBy: releaseKeyOf offers. */
class Indexed<T extends { namespace: string; release: string; name: string }> implements ReleaseRecords<T> {
  readonly records = new Map<string, T>();
  private readonly revisions = new Map<string, number>();
  private counter = 0;
  reads = 0;

  put(record: T): void {
    this.records.set(`${record.namespace}/${record.name}`, record);
    this.revisions.set(releaseKeyOf(record), ++this.counter);
  }

  group(key: string): Iterable<T> {
    this.reads++;
    return [...this.records.values()].filter((r) => releaseKeyOf(r) === key);
  }

  groupRevision(key: string): number {
    return this.revisions.get(key) ?? 0;
  }
}

function workload(release: string, component: string, version: string, replicas = 1): WorkloadRecord {
  return {
    kind: 'Deployment',
    namespace: 'ns',
    name: `${release}-${component}`,
    release,
    component,
    role: 'metadata-db',
    version,
    replicas,
    resourceVersion: '1',
  };
}

function pod(release: string, component: string, version: string): PodRecord {
  const head = version === '3.1.0' ? 'cc92b33c6709' : '29ce7909c52b';
  return {
    namespace: 'ns',
    name: `${release}-${component}-${version}`,
    release,
    component,
    role: 'metadata-db',
    version,
    head,
    phase: 'Running',
    ready: true,
    terminating: false,
    container: component,
  };
}

function setup() {
  const deployments = new Indexed<WorkloadRecord>();
  const cronJobs = new Indexed<WorkloadRecord>();
  const pods = new Indexed<PodRecord>();
  for (const release of ['a', 'b']) {
    deployments.put(workload(release, 'scheduler', '3.1.0'));
    deployments.put(workload(release, 'api-server', '3.1.0', 2));
    pods.put(pod(release, 'scheduler', '3.1.0'));
    pods.put(pod(release, 'api-server', '3.1.0'));
  }
  const cache = new ReleaseStateCache(() => ({ workloads: [deployments, cronJobs], pods }));
  const full = (release: string, operation?: Parameters<typeof releaseStateFrom>[4], db?: string) =>
    releaseStateFrom(
      'ns',
      release,
      [...deployments.records.values(), ...cronJobs.records.values()],
      pods.records.values(),
      operation,
      db,
    );
  return { deployments, pods, cache, full };
}

const OPERATION = { id: 'dg-1', fromVersion: '3.1.0', toVersion: '3.0.2', phase: 'drain' } as const;

describe('ReleaseStateCache', () => {
  it('answers what releaseStateFrom answers over every cached record', () => {
    const { cache, full } = setup();
    expect(cache.get('ns', 'a', undefined, undefined)).toEqual(full('a'));
    expect(cache.get('ns', 'b', OPERATION, 'cc92b33c6709')).toEqual(full('b', OPERATION, 'cc92b33c6709'));
    expect(cache.get('ns', 'a', undefined, undefined).execPod).toEqual({
      name: 'a-api-server-3.1.0',
      component: 'api-server',
    });
  });

  it('reads the records once while they do not change; operation and DB revision are never stale', () => {
    const { cache, deployments, full } = setup();
    cache.get('ns', 'a', undefined, undefined);
    const reads = deployments.reads;
    expect(cache.get('ns', 'a', OPERATION, '29ce7909c52b')).toEqual(full('a', OPERATION, '29ce7909c52b'));
    expect(cache.get('ns', 'a', undefined, undefined)).toEqual(full('a'));
    expect(deployments.reads).toBe(reads);
  });

  it('recomputes when a record of the release changes, not when another release changes', () => {
    const { cache, deployments, pods, full } = setup();
    cache.get('ns', 'a', undefined, undefined);
    const reads = deployments.reads;
    pods.put(pod('b', 'worker', '3.0.2'));
    cache.get('ns', 'a', undefined, undefined);
    expect(deployments.reads).toBe(reads);

    // Release a's pods move to 3.0.2: its running version follows.
    pods.records.clear();
    pods.put(pod('a', 'scheduler', '3.0.2'));
    deployments.put(workload('a', 'scheduler', '3.0.2'));
    deployments.put(workload('a', 'api-server', '3.0.2', 2));
    const state = cache.get('ns', 'a', undefined, undefined);
    expect(state.runningVersion).toBe('3.0.2');
    expect(state).toEqual(full('a'));
  });

  it('a release nobody deployed is answered empty and not remembered', () => {
    const { cache, deployments } = setup();
    expect(cache.get('ns', 'ghost', undefined, undefined)).toEqual({ workloads: [] });
    const reads = deployments.reads;
    cache.get('ns', 'ghost', undefined, undefined);
    expect(deployments.reads).toBe(reads + 1);
  });

  it('hands out a copy: a caller writing to its state does not change the next answer', () => {
    const { cache, full } = setup();
    const first = cache.get('ns', 'a', undefined, undefined);
    first.runningVersion = '2.0.0';
    expect(cache.get('ns', 'a', undefined, undefined)).toEqual(full('a'));
  });
});
