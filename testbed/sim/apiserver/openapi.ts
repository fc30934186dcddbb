// The smallest OpenAPI v3 surface kubectl needs: per group-version documents whose PATCH operations
// carry x-kubernetes-group-version-kind and the fieldValidation/dryRun query parameters, so kubectl
// validates server-side (fieldValidation=Strict) and accepts --dry-run=server. No schemas: kubectl
// then computes strategic merge patches from its compiled-in types, as it does for built-ins.
import { createHash } from 'node:crypto';
import { ALL_RESOURCES } from '../resources.js';
import type { ResourceType } from '../types.js';
import { SERVER_VERSION } from './discovery.js';

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function groupVersions(): Array<{ group: string; version: string }> {
  const seen = new Map<string, { group: string; version: string }>();
  for (const t of ALL_RESOURCES) seen.set(gvPath(t.group, t.version), { group: t.group, version: t.version });
  return [...seen.values()];
}

const PARAMETERS = ['dryRun', 'fieldManager', 'fieldValidation', 'force', 'pretty'].map((name) => ({
  name,
  in: 'query',
  schema: { type: name === 'force' ? 'boolean' : 'string', uniqueItems: true },
}));

function itemPath(t: ResourceType): string {
  const base = `/${gvPath(t.group, t.version)}`;
  return t.namespaced ? `${base}/namespaces/{namespace}/${t.plural}/{name}` : `${base}/${t.plural}/{name}`;
}

export function openApiV3Document(group: string, version: string): unknown | undefined {
  const types = ALL_RESOURCES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  for (const t of types) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    paths[itemPath(t)] = {
      patch: {
        operationId: `patch${t.kind}`,
        parameters: PARAMETERS,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      put: {
        operationId: `replace${t.kind}`,
        parameters: PARAMETERS.filter((p) => p.name !== 'force'),
        'x-kubernetes-action': 'put',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion },
    paths,
    components: { schemas: {} },
  };
}

function hashOf(doc: unknown): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').slice(0, 128).toUpperCase();
}

export function openApiV3Root(): unknown {
  const paths: Record<string, unknown> = {};
  for (const { group, version } of groupVersions()) {
    const path = gvPath(group, version);
    paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hashOf(openApiV3Document(group, version))}` };
  }
  return { paths };
}
