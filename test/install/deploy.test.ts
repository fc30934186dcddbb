import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findKubectl } from '../testbed/sim/support.js';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEPLOY_OVERLAYS, objectKey, readablePatch, renderDeployTree } from '../../src/install/deploy-tree.js';
import { renderInstallManifests, type Manifest } from '../../src/install/manifests.js';
import jsonpatch from 'fast-json-patch';

const DEPLOY = fileURLToPath(new URL('../../deploy', import.meta.url));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(DEPLOY, join(e.parentPath, e.name)))
    .sort();
}

function kustomize(dir: string): Manifest[] {
  const out = execFileSync(findKubectl(), ['kustomize', join(DEPLOY, dir)], { encoding: 'utf8', timeout: 30_000 });
  return parseAllDocuments(out).map((d) => d.toJS() as Manifest);
}

function byKey(objects: Manifest[]): Map<string, Manifest> {
  const map = new Map(objects.map((o) => [objectKey(o), o]));
  expect(map.size).toBe(objects.length); // no duplicates
  return map;
}

function expectSameObjects(actual: Manifest[], expected: Manifest[]): void {
  const a = byKey(actual);
  const e = byKey(expected);
  expect([...a.keys()].sort()).toEqual([...e.keys()].sort());
  for (const [key, object] of e) expect({ key, object: a.get(key) }).toEqual({ key, object });
}

describe('deploy/ is generated from renderInstallManifests', () => {
  it('is up to date (run `npx tsc -p tsconfig.build.json && node dist/src/install/write-deploy.js` after changing src/install)', () => {
    const tree = renderDeployTree();
    const generated = [...filesUnder(join(DEPLOY, 'base')), ...filesUnder(join(DEPLOY, 'overlays'))];
    expect(generated).toEqual(Object.keys(tree).sort());
    for (const [path, content] of Object.entries(tree)) {
      expect({ path, content: readFileSync(join(DEPLOY, path), 'utf8') }).toEqual({ path, content });
    }
  });

  it('has a README next to the generated files', () => {
    expect(readFileSync(join(DEPLOY, 'README.md'), 'utf8')).toMatch(/kubectl apply -k deploy\/base/);
  });
});

describe('kubectl kustomize renders the same objects as the manifests command', () => {
  it('base = defaults', () => {
    expectSameObjects(kustomize('base'), renderInstallManifests());
  });

  it.each(Object.entries(DEPLOY_OVERLAYS))('overlays/%s = its options', (name, options) => {
    expectSameObjects(kustomize(`overlays/${name}`), renderInstallManifests(options));
  });

  it('namespaced overlay has no cluster-wide access to workloads or secrets', () => {
    const objects = kustomize('overlays/namespaced');
    const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole') as Array<
      Manifest & { rules: Array<{ resources: string[] }> }
    >;
    expect(clusterRoles.map((r) => r.metadata.name)).toEqual(['airflow-downgrade-guard']);
    expect(clusterRoles[0]!.rules.flatMap((r) => r.resources)).toEqual(['mutatingwebhookconfigurations']);
    expect(
      objects
        .filter((o) => o.kind === 'Role')
        .map((o) => `${o.metadata.namespace}/${o.metadata.name}`)
        .sort(),
    ).toEqual(['airflow-downgrade-guard/airflow-downgrade-guard', 'airflow/airflow-downgrade-guard-workloads']);
  });
});

describe('readablePatch', () => {
  it('turns one object into the other', () => {
    const a = renderInstallManifests();
    const b = renderInstallManifests({ watchNamespaces: ['x', 'y'], failurePolicy: 'Ignore', replicas: 3 });
    for (let i = 0; i < a.length; i++) {
      const before = a[i]!;
      const after = b.find((o) => objectKey(o) === objectKey(before));
      if (!after) continue;
      const patched = jsonpatch.applyPatch(structuredClone(before), readablePatch(before, after), true).newDocument;
      expect(patched).toEqual(after);
    }
  });

  it('escapes keys with slashes and handles added and removed fields', () => {
    const a = { metadata: { labels: { 'app.kubernetes.io/name': 'x', gone: 'y' } }, list: [1, 2] };
    const b = { metadata: { labels: { 'app.kubernetes.io/name': 'z', added: 'w' } }, list: [1, 2, 3] };
    const patch = readablePatch(a, b);
    expect(patch).toContainEqual({ op: 'replace', path: '/metadata/labels/app.kubernetes.io~1name', value: 'z' });
    expect(jsonpatch.applyPatch(structuredClone(a), patch, true).newDocument).toEqual(b);
  });
});
