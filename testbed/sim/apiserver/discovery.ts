// Discovery documents: legacy (/api, /apis, /apis/<g>/<v>) and aggregated (apidiscovery.k8s.io/v2),
// the latter being what kubectl 1.30+ asks for first.
import { ALL_RESOURCES } from '../resources.js';
import type { ResourceType } from '../types.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.4',
  gitCommit: '59526cd4867447956156ae3a602fcbac10a2c335',
  gitTreeState: 'clean',
  buildDate: '2025-04-22T16:02:27Z',
  goVersion: 'go1.23.6',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const SUBRESOURCE_VERBS: Record<string, string[]> = {
  status: ['get', 'patch', 'update'],
  scale: ['get', 'patch', 'update'],
  exec: ['create', 'get'],
  log: ['get'],
};

const CATEGORIES_ALL = new Set(['pods', 'deployments', 'replicasets', 'statefulsets', 'jobs', 'cronjobs', 'services']);

function subresourceKind(type: ResourceType, sub: string): { group: string; version: string; kind: string } {
  if (sub === 'scale') return { group: 'autoscaling', version: 'v1', kind: 'Scale' };
  if (sub === 'exec') return { group: '', version: 'v1', kind: 'PodExecOptions' };
  if (sub === 'log') return { group: '', version: 'v1', kind: 'Pod' };
  return { group: type.group, version: type.version, kind: type.kind };
}

function groups(): Map<string, ResourceType[]> {
  const byGroup = new Map<string, ResourceType[]>();
  for (const type of ALL_RESOURCES) {
    if (type.group === '') continue;
    const list = byGroup.get(type.group) ?? [];
    list.push(type);
    byGroup.set(type.group, list);
  }
  return byGroup;
}

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(group: string, types: ResourceType[]): unknown {
  const versions = [...new Set(types.map((t) => t.version))].map((version) => ({
    groupVersion: `${group}/${version}`,
    version,
  }));
  return { name: group, versions, preferredVersion: versions[0] };
}

export function apiGroupList(): unknown {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups()].map(([group, types]) => groupEntry(group, types)),
  };
}

export function apiGroup(group: string): unknown | undefined {
  const types = groups().get(group);
  if (!types) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...(groupEntry(group, types) as object) };
}

export function apiResourceList(group: string, version: string): unknown | undefined {
  const types = ALL_RESOURCES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources: unknown[] = [];
  for (const t of types) {
    const entry: Record<string, unknown> = {
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
    };
    if (t.shortNames) entry.shortNames = t.shortNames;
    if (CATEGORIES_ALL.has(t.plural)) entry.categories = ['all'];
    resources.push(entry);
    for (const sub of t.subresources ?? []) {
      const kind = subresourceKind(t, sub);
      const subEntry: Record<string, unknown> = {
        name: `${t.plural}/${sub}`,
        singularName: '',
        namespaced: t.namespaced,
        kind: kind.kind,
        verbs: SUBRESOURCE_VERBS[sub] ?? ['get'],
      };
      if (kind.group !== t.group) {
        subEntry.group = kind.group;
        subEntry.version = kind.version;
      }
      resources.push(subEntry);
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}

function aggregatedResource(t: ResourceType): unknown {
  const entry: Record<string, unknown> = {
    resource: t.plural,
    responseKind: { group: t.group, version: t.version, kind: t.kind },
    scope: t.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: t.singular,
    verbs: t.verbs,
  };
  if (t.shortNames) entry.shortNames = t.shortNames;
  if (CATEGORIES_ALL.has(t.plural)) entry.categories = ['all'];
  if (t.subresources?.length) {
    entry.subresources = t.subresources.map((sub) => ({
      subresource: sub,
      responseKind: subresourceKind(t, sub),
      verbs: SUBRESOURCE_VERBS[sub] ?? ['get'],
    }));
  }
  return entry;
}

/** apidiscovery.k8s.io/v2 APIGroupDiscoveryList for /api (core) or /apis (named groups). */
export function aggregatedDiscovery(core: boolean): unknown {
  const items = core
    ? [
        {
          metadata: { creationTimestamp: null },
          versions: [
            {
              version: 'v1',
              resources: ALL_RESOURCES.filter((t) => t.group === '').map(aggregatedResource),
              freshness: 'Current',
            },
          ],
        },
      ]
    : [...groups()].map(([group, types]) => ({
        metadata: { name: group, creationTimestamp: null },
        versions: [...new Set(types.map((t) => t.version))].map((version) => ({
          version,
          resources: types.filter((t) => t.version === version).map(aggregatedResource),
          freshness: 'Current',
        })),
      }));
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}

export const AGGREGATED_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

export function wantsAggregated(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((part) => {
    const p = part.replace(/\s+/g, '');
    return (
      p.includes('g=apidiscovery.k8s.io') &&
      p.includes('v=v2;') &&
      p.includes('as=APIGroupDiscoveryList') &&
      !p.includes('v=v2beta1')
    );
  });
}
