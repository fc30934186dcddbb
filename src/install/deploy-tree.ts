import { isDeepStrictEqual } from 'node:util';
import type { Operation } from 'fast-json-patch';
import { stringify } from 'yaml';
import { renderInstallManifests, type InstallOptions, type Manifest } from './manifests.js';

const HEADER = '# Generated from src/install/manifests.ts by `node dist/src/install/write-deploy.js`. Do not edit.\n';

/** Overlays of deploy/: directory name → the options they stand for (base = defaults). */
export const DEPLOY_OVERLAYS: Readonly<Record<string, Partial<InstallOptions>>> = {
  namespaced: { watchNamespaces: ['airflow'] },
  'ignore-failures': { failurePolicy: 'Ignore' },
};

export function toYamlDocuments(objects: readonly object[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

const FILE_OF_KIND: Record<string, string> = {
  Namespace: 'namespace.yaml',
  ServiceAccount: 'serviceaccount.yaml',
  ClusterRole: 'rbac.yaml',
  ClusterRoleBinding: 'rbac.yaml',
  Role: 'rbac.yaml',
  RoleBinding: 'rbac.yaml',
  Issuer: 'cert-manager.yaml',
  Certificate: 'cert-manager.yaml',
  Service: 'service.yaml',
  Deployment: 'deployment.yaml',
  PodDisruptionBudget: 'deployment.yaml',
  MutatingWebhookConfiguration: 'webhook.yaml',
};

function groupByFile(objects: readonly Manifest[]): Map<string, Manifest[]> {
  const files = new Map<string, Manifest[]>();
  for (const object of objects) {
    const file = FILE_OF_KIND[object.kind];
    if (file === undefined) throw new Error(`no deploy/ file for kind ${object.kind}`);
    files.set(file, [...(files.get(file) ?? []), object]);
  }
  return files;
}

function kustomization(fields: Record<string, unknown>): string {
  return (
    HEADER +
    stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', ...fields }, { lineWidth: 0 })
  );
}

export function objectKey(o: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function slug(o: Manifest): string {
  return [o.kind.toLowerCase(), o.metadata.namespace, o.metadata.name].filter(Boolean).join('-');
}

function patchTarget(o: Manifest) {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  return {
    group,
    version,
    kind: o.kind,
    name: o.metadata.name,
    ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}),
  };
}

type Json = unknown;

const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

// Below this depth a node with several changed children is replaced whole, which reads better
// than a string of index-level edits (e.g. a selector expression whose operator and values changed).
const COLLAPSE_DEPTH = 3;

function diff(a: Json, b: Json, path: string[]): Operation[] {
  if (isDeepStrictEqual(a, b)) return [];
  const pointer = '/' + path.map(escapePointer).join('/');
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const changed = keys.filter((k) => !isDeepStrictEqual(a[k], b[k]));
    if (path.length >= COLLAPSE_DEPTH && changed.length > 1) return [{ op: 'replace', path: pointer, value: b }];
    return changed.flatMap((k): Operation[] => {
      const child = `${path.length > 0 ? pointer : ''}/${escapePointer(k)}`;
      if (!(k in b)) return [{ op: 'remove', path: child }];
      if (!(k in a)) return [{ op: 'add', path: child, value: b[k] }];
      return diff(a[k], b[k], [...path, k]);
    });
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    const changed = a.map((_, i) => i).filter((i) => !isDeepStrictEqual(a[i], b[i]));
    if (path.length >= COLLAPSE_DEPTH && changed.length > 1) return [{ op: 'replace', path: pointer, value: b }];
    return changed.flatMap((i) => withNameTest(a[i], [...path, String(i)], diff(a[i], b[i], [...path, String(i)])));
  }
  return [{ op: 'replace', path: pointer, value: b }];
}

/** Prefix edits inside a named list element (env var, container, webhook) with a `test` of its name. */
function withNameTest(element: Json, path: string[], ops: Operation[]): Operation[] {
  if (ops.length === 0 || !isObject(element) || typeof element.name !== 'string') return ops;
  return [{ op: 'test', path: '/' + [...path, 'name'].map(escapePointer).join('/'), value: element.name }, ...ops];
}

/** JSON patch from a to b meant for people to read in an overlay. */
export function readablePatch(a: object, b: object): Operation[] {
  return diff(a, b, []);
}

/** An overlay on top of ../../base that turns the base objects into `target`. */
function overlayFiles(base: readonly Manifest[], target: readonly Manifest[]): Record<string, string> {
  const baseByKey = new Map(base.map((o) => [objectKey(o), o]));
  const targetKeys = new Set(target.map(objectKey));
  const files: Record<string, string> = {};
  const patches: Array<Record<string, unknown>> = [];

  for (const o of base) {
    if (targetKeys.has(objectKey(o))) continue;
    const path = `delete-${slug(o)}.yaml`;
    files[path] =
      HEADER +
      stringify({
        $patch: 'delete',
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) },
      });
    patches.push({ path });
  }
  const added: Manifest[] = [];
  for (const o of target) {
    const before = baseByKey.get(objectKey(o));
    if (before === undefined) {
      added.push(o);
      continue;
    }
    const ops = readablePatch(before, o);
    if (ops.length === 0) continue;
    const path = `patch-${slug(o)}.yaml`;
    files[path] = HEADER + stringify(ops, { lineWidth: 0 });
    patches.push({ path, target: patchTarget(o) });
  }
  const resources = ['../../base'];
  if (added.length > 0) {
    files['resources.yaml'] = HEADER + toYamlDocuments(added);
    resources.push('resources.yaml');
  }
  files['kustomization.yaml'] = kustomization({ resources, ...(patches.length > 0 ? { patches } : {}) });
  return files;
}

/** Every generated file under deploy/, by path relative to deploy/. */
export function renderDeployTree(): Record<string, string> {
  const base = renderInstallManifests();
  const tree: Record<string, string> = {};
  const files = groupByFile(base);
  for (const [file, objects] of files) tree[`base/${file}`] = HEADER + toYamlDocuments(objects);
  tree['base/kustomization.yaml'] = kustomization({ resources: [...files.keys()] });
  for (const [name, options] of Object.entries(DEPLOY_OVERLAYS)) {
    for (const [file, content] of Object.entries(overlayFiles(base, renderInstallManifests(options)))) {
      tree[`overlays/${name}/${file}`] = content;
    }
  }
  return tree;
}
