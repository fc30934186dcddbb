// Stock clients against the simulated cluster, as a new user types them first: kubectl's imperative
// commands and Helm's Secrets driver send protobuf bodies; `helm --wait` waits for Service cluster
// IPs and bound claims; the Python client sends `watch=True`/`stdout=True`.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer } from '../../../testbed/sim/apiserver/index.js';
import { queryBool } from '../../../testbed/sim/apiserver/query.js';
import { startSimCluster, type SimCluster } from '../../../testbed/sim/cluster.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { Store } from '../../../testbed/sim/store.js';
import type { KubeObject } from '../../../testbed/sim/types.js';
import { waitFor } from '../../e2e/harness.js';
import { HELM_MAJORS, helmFor, type Helm } from '../../support/helm.js';
import { simProtobufConverter } from '../../../testbed/sim/protobuf-converter.js';
import { kubectlFor, removeKubectlDirs, type Kubectl } from './support.js';

const WEB_CHART = resolve(import.meta.dirname, '../../fixtures/charts/web');
const PYTHON_CLIENT = resolve(import.meta.dirname, '../../fixtures/python/kubernetes_client.py');

describe('query booleans, converted as the real API server converts them', () => {
  it('reads absent, 0 and false (any case) as false and everything else as true', () => {
    const value = (v: string | undefined) =>
      queryBool(new URLSearchParams(v === undefined ? '' : `x=${encodeURIComponent(v)}`), 'x');
    for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True', '', 'yes']) expect(value(v), v).toBe(true);
    for (const v of [undefined, '0', 'false', 'False', 'FALSE', 'fAlSe']) expect(value(v), String(v)).toBe(false);
  });
});

describe('without the protobuf converter', () => {
  it('answers protobuf bodies 415 naming the media types it accepts', async () => {
    const api = await startApiServer({ store: new Store() });
    const kubectl = kubectlFor(api.kubeconfig());
    try {
      const result = await kubectl(['create', 'namespace', 'x']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('accepted media types include: application/json, application/yaml');
    } finally {
      removeKubectlDirs();
      await api.close();
    }
  });
});

describe('stock kubectl, Helm and the Python client against the simulated cluster', () => {
  let sim: SimCluster;
  let kubectl: Kubectl;
  const get = (type: (typeof RESOURCES)[keyof typeof RESOURCES], namespace: string | undefined, name: string) =>
    sim.store.get(type, namespace, name) as (KubeObject & Record<string, any>) | undefined;

  beforeAll(async () => {
    sim = await startSimCluster({
      podStartDelayMs: 20,
      controllers: { readyDelayMs: 20, probeIntervalMs: 20, graceUnitMs: 10 },
      protobufConverter: simProtobufConverter(),
    });
    kubectl = kubectlFor(sim.api.kubeconfig());
  });

  afterAll(async () => {
    removeKubectlDirs();
    await sim?.stop();
  });

  const ok = async (args: string[]) => {
    const result = await kubectl(args);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  };

  it('runs the imperative kubectl commands (protobuf bodies)', async () => {
    expect(await ok(['create', 'namespace', 'imperative'])).toContain('namespace/imperative created');
    const n = ['-n', 'imperative'];
    expect(await ok([...n, 'create', 'secret', 'generic', 'creds', '--from-literal=password=s3cret'])).toContain(
      'secret/creds created',
    );
    expect(await ok([...n, 'create', 'configmap', 'settings', '--from-literal=mode=fast'])).toContain(
      'configmap/settings created',
    );
    expect(
      await ok([...n, 'create', 'deployment', 'web', '--image=nginx:1.27', '--replicas=2', '--port=80']),
    ).toContain('deployment.apps/web created');
    expect(await ok([...n, 'create', 'serviceaccount', 'robot'])).toContain('serviceaccount/robot created');
    expect(await ok([...n, 'expose', 'deployment', 'web', '--port=80'])).toContain('service/web exposed');
    expect(await ok([...n, 'create', 'service', 'clusterip', 'headless', '--clusterip=None'])).toContain(
      'service/headless created',
    );
    expect(await ok([...n, 'create', 'ingress', 'web', '--rule=web.example.com/=web:80'])).toContain(
      'ingress.networking.k8s.io/web created',
    );
    expect(await ok([...n, 'create', 'job', 'once', '--image=busybox', '--', 'true'])).toContain(
      'job.batch/once created',
    );
    expect(
      await ok([...n, 'create', 'cronjob', 'nightly', '--image=busybox', '--schedule=0 3 * * *', '--', 'true']),
    ).toContain('cronjob.batch/nightly created');
    expect(await ok([...n, 'create', 'role', 'reader', '--verb=get', '--resource=pods'])).toContain(
      'role.rbac.authorization.k8s.io/reader created',
    );
    expect(
      await ok([...n, 'create', 'rolebinding', 'reader', '--role=reader', '--serviceaccount=imperative:robot']),
    ).toContain('rolebinding.rbac.authorization.k8s.io/reader created');

    expect(Buffer.from(get(RESOURCES.secrets, 'imperative', 'creds')!.data.password, 'base64').toString()).toBe(
      's3cret',
    );
    expect(get(RESOURCES.configmaps, 'imperative', 'settings')!.data).toEqual({ mode: 'fast' });
    expect(get(RESOURCES.deployments, 'imperative', 'web')!.spec.replicas).toBe(2);
    const service = get(RESOURCES.services, 'imperative', 'web')!;
    expect(service.spec.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(service.spec.clusterIPs).toEqual([service.spec.clusterIP]);
    expect(get(RESOURCES.services, 'imperative', 'headless')!.spec.clusterIP).toBe('None');
    const table = await ok([...n, 'get', 'service', 'web']);
    expect(table).toMatch(
      new RegExp(`web\\s+ClusterIP\\s+${service.spec.clusterIP.replace(/\./g, '\\.')}\\s+<none>\\s+80/TCP`),
    );
    expect(await ok([...n, 'delete', 'configmap', 'settings'])).toContain('configmap "settings" deleted');
  });

  it('keeps a Service cluster IP over an update that leaves it out, and never hands one out twice', async () => {
    const n = ['-n', 'imperative'];
    const before = get(RESOURCES.services, 'imperative', 'web')!.spec.clusterIP;
    const service = get(RESOURCES.services, 'imperative', 'web')!;
    delete service.spec.clusterIP;
    delete service.spec.clusterIPs;
    await sim.api.registry.update(
      { user: { username: 'admin', groups: ['system:masters'] }, dryRun: false },
      RESOURCES.services,
      'imperative',
      'web',
      undefined,
      service,
    );
    expect(get(RESOURCES.services, 'imperative', 'web')!.spec.clusterIP).toBe(before);
    await ok([...n, 'create', 'service', 'clusterip', 'second', '--tcp=81:81']);
    expect(get(RESOURCES.services, 'imperative', 'second')!.spec.clusterIP).not.toBe(before);
  });

  for (const major of HELM_MAJORS) {
    describe(`Helm ${major} with the default Secrets driver`, () => {
      let helm: Helm;
      const ns = `web-helm${major}`;
      beforeAll(() => {
        helm = helmFor(major, sim.api.kubeconfig());
      });
      afterAll(() => helm?.cleanup());

      const deployment = () => get(RESOURCES.deployments, ns, 'site');

      it('installs with --wait: release Secret written, cluster IP allocated, claim bound, pods ready', async () => {
        await helm.ok(['install', 'site', WEB_CHART, '-n', ns, '--create-namespace', '--wait', '--timeout', '2m']);
        const record = get(RESOURCES.secrets, ns, 'sh.helm.release.v1.site.v1')!;
        expect(record.type).toBe('helm.sh/release.v1');
        expect(record.metadata.labels).toMatchObject({ owner: 'helm', name: 'site', status: 'deployed', version: '1' });
        expect(get(RESOURCES.services, ns, 'site')!.spec.clusterIP).toMatch(/^10\.96\./);
        expect(get(RESOURCES.persistentvolumeclaims, ns, 'site-data')!.status.phase).toBe('Bound');
        expect(get(RESOURCES.ingresses, ns, 'site')!.spec.rules[0].host).toBe('site.example.com');
        expect(deployment()!.status.readyReplicas).toBe(1);
      });

      it('upgrades, rolls back and uninstalls with --wait', async () => {
        await helm.ok([
          'upgrade',
          'site',
          WEB_CHART,
          '-n',
          ns,
          '--set',
          'replicas=2',
          '--set',
          'message=changed',
          '--wait',
          '--timeout',
          '2m',
        ]);
        expect(deployment()!.spec.replicas).toBe(2);
        expect(deployment()!.status.readyReplicas).toBe(2);
        expect(get(RESOURCES.configmaps, ns, 'site-config')!.data.message).toBe('changed');
        await helm.ok(['rollback', 'site', '1', '-n', ns, '--wait', '--timeout', '2m']);
        expect(deployment()!.spec.replicas).toBe(1);
        expect(get(RESOURCES.configmaps, ns, 'site-config')!.data.message).toBe('hello');
        expect((await helm.history('site', ns)).map((r) => [r.revision, r.status])).toEqual([
          [1, 'superseded'],
          [2, 'superseded'],
          [3, 'deployed'],
        ]);
        await helm.ok(['uninstall', 'site', '-n', ns, '--wait', '--timeout', '2m']);
        for (const type of [
          RESOURCES.deployments,
          RESOURCES.services,
          RESOURCES.persistentvolumeclaims,
          RESOURCES.ingresses,
          RESOURCES.configmaps,
        ]) {
          expect(
            sim.store.list(type, ns).items.filter((o) => o.metadata.name.startsWith('site')),
            type.plural,
          ).toEqual([]);
        }
        expect(sim.store.list(RESOURCES.secrets, ns).items.map((s) => s.metadata.name)).toEqual([]);
      });
    });
  }

  it('serves the Python kubernetes client (watch=True, stdout=True)', async () => {
    const ns = `python-${Date.now()}`;
    await ok(['create', 'namespace', ns]);
    await ok(['-n', ns, 'create', 'deployment', 'shell', '--image=busybox']);
    const pod = await waitForRunningPod(sim, ns);
    const dir = mkdtempSync(join(tmpdir(), 'adg-python-'));
    try {
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, sim.api.kubeconfig(), { mode: 0o600 });
      const stdout = await runPython([PYTHON_CLIENT, kubeconfig, ns, pod]);
      const seen = JSON.parse(stdout) as { watched: Array<[string, string]>; exec: string };
      expect(seen.watched).toContainEqual(['ADDED', 'from-python']);
      expect(seen.exec).toBe('hello from exec\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitForRunningPod(sim: SimCluster, namespace: string): Promise<string> {
  const running = () =>
    sim.store
      .list(RESOURCES.pods, namespace)
      .items.find((p) => (p.status as { phase?: string } | undefined)?.phase === 'Running');
  return (await waitFor(`a running pod in ${namespace}`, running)).metadata.name;
}

/** Debian's python3-kubernetes lives in the system Python; PYTHON overrides it. */
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

function runPython(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(PYTHON, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (!error) return resolvePromise(String(stdout));
      const missing = /No module named 'kubernetes'/.test(String(stderr));
      reject(
        new Error(
          missing
            ? `the Python kubernetes client is required: apt-get install python3-kubernetes\n${stderr}`
            : `${PYTHON} ${args.join(' ')}: ${error.message}\n${stderr}`,
        ),
      );
    });
  });
}
