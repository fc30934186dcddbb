// The coordinator's ImageResolver against a real registry (Debian's docker-registry, TLS, htpasswd):
// cache hits, labels read with the pod's and its ServiceAccount's pull secrets, digest-pinned images,
// a moving tag re-read after its TTL, and the probe pod when the registry cannot tell. The cluster is
// an in-memory fake whose pods start Running and whose exec answers like `airflow version`.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResolutionCache } from '../../src/core/resolution-cache.js';
import { ImageResolver, PROBE_ARGV, dockerConfigOf, versionInOutput } from '../../src/coordinator/image-resolver.js';
import type { Cluster } from '../../src/k8s/cluster.js';
import type { ExecCommand } from '../../src/k8s/exec.js';
import { registryAvailable, startRegistry, type TestRegistry } from '../../testbed/oci-registry.js';

const AUTH = { username: 'puller', password: 'pw:with-colon' };
const labels = (version: string) => ({ 'org.apache.airflow.version': version });

function fakeCluster(objects: Record<string, unknown>): {
  cluster: Cluster;
  created: string[];
  deleted: string[];
} {
  const created: string[] = [];
  const deleted: string[] = [];
  const cluster = {
    async find(kind: string, namespace: string, name: string) {
      const object = objects[`${kind}/${namespace}/${name}`];
      return kind === 'Pod' && object ? { ...(object as object), status: { phase: 'Running' } } : object;
    },
    async create(kind: string, namespace: string, body: { metadata: { name: string } }) {
      created.push(body.metadata.name);
      objects[`${kind}/${namespace}/${body.metadata.name}`] = body;
      return body;
    },
    async delete(kind: string, namespace: string, name: string) {
      deleted.push(name);
      delete objects[`${kind}/${namespace}/${name}`];
    },
  } as unknown as Cluster;
  return { cluster, created, deleted };
}

const secret = (host: string) => ({
  type: 'kubernetes.io/dockerconfigjson',
  data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [host]: AUTH } })).toString('base64') },
});

describe.runIf(registryAvailable() || process.env.CI !== undefined)('ImageResolver', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: AUTH });
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
  });

  function resolver(objects: Record<string, unknown>, now: () => number = Date.now, probeVersion = '2.8.4') {
    const fake = fakeCluster(objects);
    const execs: ExecCommand[] = [];
    const r = new ImageResolver({
      cluster: fake.cluster,
      exec: async (command) => {
        execs.push(command);
        return {
          exitCode: 0,
          timedOut: false,
          stdout: `WARNING: a deprecation\n${probeVersion}\n`,
          stderr: '',
          durationMs: 5,
        };
      },
      logger: pino({ level: 'silent' }),
      cache: new ResolutionCache(60_000),
      registry: { ca: [registry.ca] },
      probeTimeoutMs: 5000,
      now,
    });
    return { r, execs, ...fake };
  }

  const template = (image: string, extra: Record<string, unknown> = {}) => ({
    spec: { serviceAccountName: 'airflow-scheduler', containers: [{ name: 'scheduler', image }], ...extra },
  });

  it('labels with the ServiceAccount pull secret; digest-pinned and cached answers; latency figures', async () => {
    const digest = await registry.push('catalog-airflow-airflow', 'build-4711', { labels: labels('2.9.3') });
    const image = `${registry.host}/catalog-airflow-airflow:build-4711`;
    const { r, created } = resolver({
      'ServiceAccount/airflow/airflow-scheduler': { imagePullSecrets: [{ name: 'corp' }] },
      'Secret/airflow/corp': secret(registry.host),
    });
    const use = { namespace: 'airflow', release: 'airflow', source: 'deployment/airflow-scheduler' };
    const miss = await r.resolve({ ...use, image, template: template(image) });
    expect(miss).toMatchObject({ version: '2.9.3', method: 'registry', digest });
    const hit = await r.resolve({ ...use, image, template: template(image) });
    expect(hit).toEqual({ version: '2.9.3', method: 'cache', durationMs: 0 });
    // The same digest pinned: known without asking the registry again.
    expect(r.lookup(`${registry.host}/catalog-airflow-airflow@${digest}`)).toBe('2.9.3');
    expect(created).toEqual([]);
    const hits: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const began = process.hrtime.bigint();
      r.lookup(image);
      hits.push(Number(process.hrtime.bigint() - began) / 1e6);
    }
    hits.sort((a, b) => a - b);
    console.log(
      `resolution latency: registry miss ${miss.durationMs} ms (htpasswd, TLS, 3 requests); cache hit p50 ${hits[500]!.toFixed(4)} ms, p99 ${hits[990]!.toFixed(4)} ms`,
    );
  });

  it('a digest-pinned image read by its digest, credentials from the pod spec imagePullSecrets', async () => {
    const digest = await registry.push('pinned/airflow', 'any', { labels: labels('3.0.2') });
    const image = `${registry.host}/pinned/airflow@${digest}`;
    const { r } = resolver({ 'Secret/airflow/pull': secret(registry.host) });
    const found = await r.resolve({
      namespace: 'airflow',
      release: 'airflow',
      source: 'deployment/x',
      image,
      template: template(image, { imagePullSecrets: [{ name: 'pull' }], serviceAccountName: 'none' }),
    });
    expect(found).toMatchObject({ version: '3.0.2', method: 'registry', digest });
  });

  it('a moving tag answers from the cache until its TTL, then with what it points at now', async () => {
    let clock = 1_000_000;
    const { r } = resolver({ 'Secret/airflow/pull': secret(registry.host) }, () => clock);
    const image = `${registry.host}/moving/airflow:latest`;
    const use = {
      namespace: 'airflow',
      release: 'airflow',
      source: 'deployment/x',
      image,
      template: template(image, { imagePullSecrets: [{ name: 'pull' }] }),
    };
    await registry.push('moving/airflow', 'latest', { labels: labels('3.1.0') });
    expect(await r.resolve(use)).toMatchObject({ version: '3.1.0', method: 'registry' });
    await registry.push('moving/airflow', 'latest', { labels: labels('3.0.2') });
    expect(await r.resolve(use)).toMatchObject({ version: '3.1.0', method: 'cache' });
    clock += 60_000;
    expect(await r.resolve(use)).toMatchObject({ version: '3.0.2', method: 'registry' });
  });

  it('an unreadable registry: a probe pod from the template runs `airflow version`, and is deleted', async () => {
    const image = `${registry.host}/nowhere/airflow:build-1`; // no credentials: 401
    const { r, execs, created, deleted } = resolver({}, Date.now, '2.8.4');
    const found = await r.resolve({
      namespace: 'airflow',
      release: 'airflow',
      source: 'deployment/airflow-scheduler',
      image,
      template: template(image, { initContainers: [{ name: 'wait', image }] }),
    });
    expect(found).toMatchObject({ version: '2.8.4', method: 'probe-pod' });
    expect(created).toHaveLength(1);
    expect(created[0]).toMatch(/^airflow-downgrade-guard-probe-[0-9a-f]{10}$/);
    expect(deleted).toEqual(created);
    expect(execs).toMatchObject([{ pod: created[0], container: 'scheduler', argv: PROBE_ARGV }]);
    console.log(`resolution latency: probe pod (fake cluster, registry 401 first) ${found.durationMs} ms`);
  });

  it('nothing tells: the registry and the probe pod reasons, the pod deleted; no new probe pod before the backoff', async () => {
    let clock = 5_000_000;
    const image = `${registry.host}/nowhere/airflow:build-2`;
    const { r, deleted, created } = resolver({}, () => clock, 'not a version');
    const use = { namespace: 'airflow', release: 'airflow', source: 'deployment/x', image, template: template(image) };
    await expect(r.resolve(use)).rejects.toThrow(
      /registry: .*needs credentials|registry: .*401.*; probe pod: "airflow version" printed no Airflow version/,
    );
    expect(deleted).toEqual(created);
    expect(created).toHaveLength(1);
    clock += 14_000;
    await expect(r.resolve(use)).rejects.toThrow(/printed no Airflow version \(tried again in 1 s\)/);
    expect(created).toHaveLength(1);
    clock += 1_000;
    await expect(r.resolve(use)).rejects.toThrow(/printed no Airflow version$/);
    expect(created).toHaveLength(2);
    // Backoff doubles: 30 s now.
    clock += 29_000;
    await expect(r.resolve(use)).rejects.toThrow(/tried again in 1 s/);
  });
});

describe('probe output and pull secrets', () => {
  it('reads the version from the last line that is one', () => {
    expect(versionInOutput('  \n2.9.3\n')).toBe('2.9.3');
    expect(versionInOutput('warning 1.2\n3.0.2rc1\n\n')).toBe('3.0.2rc1');
    expect(versionInOutput('bash: airflow: command not found\n')).toBeUndefined();
  });

  it('reads .dockerconfigjson and the legacy .dockercfg; anything else is none', () => {
    const auths = { 'r.example': { auth: 'dTpw' } };
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
    expect(dockerConfigOf({ data: { '.dockerconfigjson': b64({ auths }) } })).toEqual({ auths });
    expect(dockerConfigOf({ data: { '.dockercfg': b64(auths) } })).toEqual({ auths });
    expect(dockerConfigOf({ data: { '.dockerconfigjson': 'not base64 json' } })).toBeUndefined();
    expect(dockerConfigOf(undefined)).toBeUndefined();
  });
});
