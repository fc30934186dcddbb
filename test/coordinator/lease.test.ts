import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { LeaseKeeper } from '../../src/coordinator/lease.js';
import { KubeApiError } from '../../src/k8s/rest.js';

/** Leases in memory with the API server's optimistic concurrency: a stale resourceVersion is a 409. */
class FakeLeases {
  readonly objects = new Map<string, Record<string, unknown>>();
  calls: string[] = [];
  private rv = 1;

  async find<T>(_kind: string, namespace: string, name: string): Promise<T | undefined> {
    this.calls.push('GET');
    const obj = this.objects.get(`${namespace}/${name}`);
    return obj ? (structuredClone(obj) as T) : undefined;
  }

  async create<T>(_kind: string, namespace: string, body: Record<string, unknown>): Promise<T> {
    this.calls.push('POST');
    const name = (body.metadata as { name: string }).name;
    if (this.objects.has(`${namespace}/${name}`)) throw new KubeApiError(409, 'AlreadyExists', 'exists');
    return this.store(namespace, name, body) as T;
  }

  async replace<T>(_kind: string, namespace: string, name: string, body: Record<string, unknown>): Promise<T> {
    this.calls.push('PUT');
    const current = this.objects.get(`${namespace}/${name}`);
    const sent = (body.metadata as { resourceVersion?: string }).resourceVersion;
    if (!current || (current.metadata as { resourceVersion: string }).resourceVersion !== sent)
      throw new KubeApiError(409, 'Conflict', 'stale');
    return this.store(namespace, name, body) as T;
  }

  /** Another replica writes the Lease (as if it took it over). */
  steal(namespace: string, name: string, holder: string): void {
    const current = this.objects.get(`${namespace}/${name}`)!;
    this.store(namespace, name, {
      ...current,
      spec: {
        ...(current.spec as object),
        holderIdentity: holder,
        leaseDurationSeconds: 15,
        renewTime: new Date().toISOString(),
      },
    });
  }

  holder(namespace: string, name: string): unknown {
    return (this.objects.get(`${namespace}/${name}`)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
  }

  private store(namespace: string, name: string, body: Record<string, unknown>): Record<string, unknown> {
    const obj = structuredClone({
      ...body,
      metadata: { ...(body.metadata as object), name, namespace, resourceVersion: String(++this.rv) },
    });
    this.objects.set(`${namespace}/${name}`, obj);
    return structuredClone(obj);
  }
}

const logger = pino({ level: 'silent' });
const LEASE = 'airflow-downgrade-guard-airflow';

function keeper(cluster: FakeLeases, identity: string, durationSeconds: number, now?: () => number): LeaseKeeper {
  return new LeaseKeeper({ identity, durationSeconds, cluster: cluster as never, logger, ...(now ? { now } : {}) });
}

describe('LeaseKeeper', () => {
  it('acquires with one GET and one create, then answers from memory until a third of the duration', async () => {
    const cluster = new FakeLeases();
    let now = 1_000_000;
    const a = keeper(cluster, 'a', 15, () => now);
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    expect(cluster.calls).toEqual(['GET', 'POST']);
    now += 4_000;
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    expect(cluster.calls).toEqual(['GET', 'POST']);
    now += 1_500; // past 5 s = duration / 3: renew with a PUT on the copy we wrote, no GET
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    expect(cluster.calls).toEqual(['GET', 'POST', 'PUT']);
    expect(cluster.holder('ns', LEASE)).toBe('a');
  });

  it('does not take a fresh Lease of another replica, nor read it again before it could expire', async () => {
    const cluster = new FakeLeases();
    expect(await keeper(cluster, 'a', 15).acquire('ns', 'airflow')).toBe(true);
    const b = keeper(cluster, 'b', 15);
    cluster.calls = [];
    expect(await b.acquire('ns', 'airflow')).toBe(false);
    expect(await b.acquire('ns', 'airflow')).toBe(false);
    expect(cluster.calls).toEqual(['GET']);
    expect(b.holds('ns', 'airflow')).toBe(false);
  });

  it('takes over an expired Lease and counts the transition', async () => {
    const cluster = new FakeLeases();
    await keeper(cluster, 'a', 1).acquire('ns', 'airflow');
    await new Promise((r) => setTimeout(r, 1_100));
    const b = keeper(cluster, 'b', 1);
    expect(await b.acquire('ns', 'airflow')).toBe(true);
    const spec = cluster.objects.get(`ns/${LEASE}`)!.spec as { holderIdentity: string; leaseTransitions: number };
    expect(spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('keeps renewing while a long step runs, so the holder never changes', async () => {
    const cluster = new FakeLeases();
    const a = keeper(cluster, 'a', 0.3);
    const b = keeper(cluster, 'b', 0.3);
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    const rival = setInterval(() => void b.acquire('ns', 'airflow'), 20);
    try {
      // The step lasts more than three lease durations.
      const { value, lost } = await a.whileHolding(
        'ns',
        'airflow',
        () => new Promise((r) => setTimeout(() => r('done'), 1_000)),
      );
      expect(value).toBe('done');
      expect(lost).toBe(false);
    } finally {
      clearInterval(rival);
    }
    expect(cluster.holder('ns', LEASE)).toBe('a');
    expect(cluster.calls.filter((c) => c === 'PUT').length).toBeGreaterThanOrEqual(3);
  });

  it('reports a Lease taken by another replica during the step as lost', async () => {
    const cluster = new FakeLeases();
    const a = keeper(cluster, 'a', 0.3);
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    const { lost } = await a.whileHolding('ns', 'airflow', async () => {
      cluster.steal('ns', LEASE, 'b');
      await new Promise((r) => setTimeout(r, 400));
      return 'result';
    });
    expect(lost).toBe(true);
    expect(a.holds('ns', 'airflow')).toBe(false);
    expect(await a.acquire('ns', 'airflow')).toBe(false);
  });

  it('reports the Lease lost when renewals fail until it expires', async () => {
    const cluster = new FakeLeases();
    const a = keeper(cluster, 'a', 0.3);
    expect(await a.acquire('ns', 'airflow')).toBe(true);
    cluster.replace = async () => {
      throw new KubeApiError(503, 'ServiceUnavailable', 'down');
    };
    const { lost } = await a.whileHolding('ns', 'airflow', () => new Promise((r) => setTimeout(r, 500)));
    expect(lost).toBe(true);
  });
});
