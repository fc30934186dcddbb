// Where the simulated API server's server-side apply differs from a real one, pinned with the real
// kubectl (docs/helm.md, "Helm 4 and server-side apply"): it merges the applied fields like a
// strategic merge patch, keeps no managedFields, reports no conflicts between field managers, and does
// not remove a field its applier stops sending. If one of these changes, the docs change with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../testbed/sim/apiserver/index.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { Store } from '../../../testbed/sim/store.js';
import { kubectlFor, removeKubectlDirs, type Kubectl } from './support.js';

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

describe('server-side apply in the simulated API server (approximated; docs/helm.md)', () => {
  let store: Store;
  let api: ApiServer;
  let kubectl: Kubectl;

  beforeAll(async () => {
    store = new Store();
    api = await startApiServer({ store, execHandler: async () => ({ exitCode: 0 }) });
    kubectl = kubectlFor(api.kubeconfig());
    const ns = await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ssa' } }),
    });
    expect(ns.code, ns.stderr).toBe(0);
  });

  afterAll(async () => {
    removeKubectlDirs();
    await api?.close();
  });

  const apply = (manager: string, body: string, force = false) =>
    kubectl(
      ['apply', '--server-side', `--field-manager=${manager}`, ...(force ? ['--force-conflicts'] : []), '-f', '-'],
      { input: body },
    );
  const live = () => store.get(RESOURCES.deployments, 'ssa', 'web') as any;

  it('creates and updates by apply, keeping no managedFields (a real server records one entry per manager)', async () => {
    const created = await apply('argocd-controller', deployment(2, { tier: 'web', team: 'a' }));
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('deployment.apps/web serverside-applied');
    expect(live().spec.replicas).toBe(2);
    expect(live().metadata.managedFields).toBeUndefined();
    const shown = await kubectl(['get', 'deployment', 'web', '-n', 'ssa', '--show-managed-fields', '-o', 'json']);
    expect(JSON.parse(shown.stdout).metadata.managedFields).toBeUndefined();
  });

  it('another manager setting a field the first one applied wins without --force-conflicts (a real server answers 409 naming "argocd-controller")', async () => {
    const result = await apply('kustomize-controller', deployment(5, { tier: 'web', team: 'a' }));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/conflict/i);
    expect(live().spec.replicas).toBe(5);
  });

  it('an update by another client (kubectl scale) is no conflict for the next apply either; --force-conflicts is accepted', async () => {
    expect((await kubectl(['scale', 'deployment', 'web', '-n', 'ssa', '--replicas=0'])).code).toBe(0);
    const plain = await apply('argocd-controller', deployment(2, { tier: 'web', team: 'a' }));
    expect(plain.code, plain.stderr).toBe(0);
    expect(live().spec.replicas).toBe(2);
    const forced = await apply('argocd-controller', deployment(3, { tier: 'web', team: 'a' }), true);
    expect(forced.code, forced.stderr).toBe(0);
    expect(live().spec.replicas).toBe(3);
  });

  it('a field the applier stops sending stays (a real server removes it when no other manager owns it)', async () => {
    const result = await apply('argocd-controller', deployment(3, { tier: 'web' }));
    expect(result.code, result.stderr).toBe(0);
    expect(live().metadata.labels).toEqual({ tier: 'web', team: 'a' });
  });
});
