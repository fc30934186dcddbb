// Server-side apply on the real kube-apiserver, where docs/helm.md says the simulated cluster
// differs (test/testbed/sim/server-side-apply.test.ts pins the simulated side): managedFields per manager, a
// conflict (409 naming the manager) when an apply sets a field the guard's client last wrote, taken
// over with --force-conflicts, none after the guard's own writes (they give spec up), and a field an
// applier stops sending removed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { buildControlPlane } from './components.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { kubectlAt, type KubectlRun } from './kubectl-run.js';

let controlPlane: ControlPlane | undefined;
let dir = '';
let kubectl: (args: string[], input?: string) => Promise<KubectlRun>;
let guardClient: Cluster;

const deployment = (replicas: number, labels: Record<string, string>) =>
  JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'ssa', labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1' }] } },
    },
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adg-ssa-'));
  controlPlane = await startControlPlane({ binaries: await buildControlPlane() });
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, controlPlane.adminKubeconfig, { mode: 0o600 });
  kubectl = kubectlAt(kubeconfigPath);
  const kc = new KubeConfig();
  kc.loadFromString(controlPlane.adminKubeconfig);
  // The client the coordinator drains and releases with.
  guardClient = new Cluster(new KubeRest(kc), { attempts: 1, baseDelayMs: 50 });
  expect((await kubectl(['create', 'namespace', 'ssa'])).code).toBe(0);
});

afterAll(async () => {
  await controlPlane?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('server-side apply on the real kube-apiserver', () => {
  const apply = (manager: string, body: string, force = false) =>
    kubectl(
      ['apply', '--server-side', `--field-manager=${manager}`, ...(force ? ['--force-conflicts'] : []), '-f', '-'],
      body,
    );
  const live = async () => JSON.parse((await kubectl(['get', 'deployment', 'web', '-n', 'ssa', '-o', 'json'])).stdout);
  const managers = async (): Promise<string[]> =>
    JSON.parse(
      (await kubectl(['get', 'deployment', 'web', '-n', 'ssa', '--show-managed-fields', '-o', 'json'])).stdout,
    ).metadata.managedFields.map((f: { manager: string; operation: string }) => `${f.manager} ${f.operation}`);

  it('a drain by the guard’s client makes the next apply of the chart’s replicas a conflict; --force-conflicts takes it over', async () => {
    const created = await apply('helm', deployment(2, { tier: 'web', team: 'a' }));
    expect(created.code, created.stderr).toBe(0);
    expect(await managers()).toContain('helm Apply');
    await guardClient.patch('Deployment', 'ssa', 'web', [{ op: 'replace', path: '/spec/replicas', value: 0 }]);
    // The guard's client names itself (User-Agent): its writes are owned by `airflow-downgrade-guard`.
    expect(await managers()).toEqual(['helm Apply', 'airflow-downgrade-guard Update']);
    const guardManager = 'airflow-downgrade-guard';

    const refused = await apply('helm', deployment(2, { tier: 'web', team: 'a' }));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`conflict with "${guardManager}"`);
    expect(refused.stderr).toContain('.spec.replicas');
    expect((await live()).spec.replicas).toBe(0);

    const forced = await apply('helm', deployment(2, { tier: 'web', team: 'a' }), true);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await live()).spec.replicas).toBe(2);
  });

  it('a write by the guard (patchUnchanged) gives spec up: the next apply without force takes the replicas back', async () => {
    const created = await apply('helm', deployment(2, { tier: 'web' }));
    expect(created.code, created.stderr).toBe(0);
    const read = await live();
    const drained = { 'airflow-downgrade-guard/drained': '{"operation":"dg-0123456789abcdef","replicas":2}' };
    await guardClient.patchUnchanged('Deployment', read, [
      { op: 'replace', path: '/spec/replicas', value: 0 },
      read.metadata.annotations
        ? {
            op: 'add',
            path: '/metadata/annotations/airflow-downgrade-guard~1drained',
            value: drained['airflow-downgrade-guard/drained'],
          }
        : { op: 'add', path: '/metadata/annotations', value: drained },
    ]);
    const shown = JSON.parse(
      (await kubectl(['get', 'deployment', 'web', '-n', 'ssa', '--show-managed-fields', '-o', 'json'])).stdout,
    );
    expect(shown.spec.replicas).toBe(0);
    const guard = shown.metadata.managedFields.filter(
      (f: { manager: string }) => f.manager === 'airflow-downgrade-guard',
    );
    // Its own annotation stays its own; the replicas it set are nobody's.
    expect(guard.map((f: { fieldsV1: object }) => Object.keys(f.fieldsV1))).toEqual([['f:metadata']]);

    const taken = await apply('helm', deployment(3, { tier: 'web' }));
    expect(taken.code, taken.stderr).toBe(0);
    expect((await live()).spec.replicas).toBe(3);
  });

  it('a field the applier stops sending is removed', async () => {
    const result = await apply('helm', deployment(2, { tier: 'web' }));
    expect(result.code, result.stderr).toBe(0);
    expect((await live()).metadata.labels).toEqual({ tier: 'web' });
  });
});
