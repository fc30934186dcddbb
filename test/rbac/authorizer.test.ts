import { describe, expect, it } from 'vitest';
import { renderInstallManifests } from '../../src/install/manifests.js';
import { GUARD_PERMISSIONS } from '../../src/install/permissions.js';
import {
  connectVerbs,
  createRbacAuthorizer,
  describeGrant,
  forbiddenMessage,
  rbacObjectsFrom,
  serviceAccountIdentity,
  type AuthorizationRequest,
  type RbacObjects,
} from '../../testbed/sim/rbac/authorizer.js';

const guard = serviceAccountIdentity('airflow-downgrade-guard', 'airflow-downgrade-guard');
const req = (r: Omit<AuthorizationRequest, 'user' | 'groups'>, who = guard): AuthorizationRequest => ({ ...who, ...r });

function installed(options: Parameters<typeof renderInstallManifests>[0] = {}) {
  const objects = rbacObjectsFrom(renderInstallManifests(options));
  return { objects, authz: createRbacAuthorizer(() => objects) };
}

describe('the guard with the default (cluster-wide) install', () => {
  const { authz } = installed();

  it.each([
    ['list deployments everywhere', { verb: 'list', apiGroup: 'apps', resource: 'deployments' }],
    ['watch pods in airflow', { verb: 'watch', apiGroup: '', resource: 'pods', namespace: 'airflow' }],
    [
      'patch a deployment',
      { verb: 'patch', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow', name: 'airflow-scheduler' },
    ],
    [
      'drain a statefulset (patch of replicas)',
      { verb: 'patch', apiGroup: 'apps', resource: 'statefulsets', namespace: 'airflow', name: 'airflow-worker' },
    ],
    [
      'exec (websocket get)',
      { verb: 'get', apiGroup: '', resource: 'pods', subresource: 'exec', namespace: 'airflow', name: 'p' },
    ],
    [
      'exec (create)',
      { verb: 'create', apiGroup: '', resource: 'pods', subresource: 'exec', namespace: 'airflow', name: 'p' },
    ],
    ['suspend a cronjob', { verb: 'patch', apiGroup: 'batch', resource: 'cronjobs', namespace: 'airflow', name: 'c' }],
    [
      'delete a held job a return left behind',
      {
        verb: 'delete',
        apiGroup: 'batch',
        resource: 'jobs',
        namespace: 'airflow',
        name: 'airflow-run-airflow-migrations',
      },
    ],
    [
      'read the metadata secret',
      { verb: 'get', apiGroup: '', resource: 'secrets', namespace: 'airflow', name: 'airflow-metadata' },
    ],
    ['emit an event', { verb: 'create', apiGroup: '', resource: 'events', namespace: 'airflow' }],
    [
      'take a lease next to the release',
      { verb: 'create', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'airflow' },
    ],
    [
      'record operation state next to the release',
      {
        verb: 'update',
        apiGroup: '',
        resource: 'configmaps',
        namespace: 'airflow',
        name: 'airflow-downgrade-guard-op-airflow',
      },
    ],
    [
      'update its TLS secret',
      {
        verb: 'update',
        apiGroup: '',
        resource: 'secrets',
        namespace: 'airflow-downgrade-guard',
        name: 'airflow-downgrade-guard-tls',
      },
    ],
    [
      'create its TLS secret',
      { verb: 'create', apiGroup: '', resource: 'secrets', namespace: 'airflow-downgrade-guard' },
    ],
    [
      'patch its webhook configuration',
      {
        verb: 'patch',
        apiGroup: 'admissionregistration.k8s.io',
        resource: 'mutatingwebhookconfigurations',
        name: 'airflow-downgrade-guard',
      },
    ],
  ])('may %s', (_, r) => {
    expect(authz.authorize(req(r))).toBe(true);
  });

  it.each([
    ['list secrets', { verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'airflow' }],
    [
      'update a deployment (only patch)',
      { verb: 'update', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow', name: 'x' },
    ],
    [
      'delete a deployment',
      { verb: 'delete', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow', name: 'x' },
    ],
    [
      'scale a replicaset',
      {
        verb: 'patch',
        apiGroup: 'apps',
        resource: 'replicasets',
        subresource: 'scale',
        namespace: 'airflow',
        name: 'x',
      },
    ],
    [
      'read pod logs',
      { verb: 'get', apiGroup: '', resource: 'pods', subresource: 'log', namespace: 'airflow', name: 'p' },
    ],
    [
      'patch another webhook configuration',
      {
        verb: 'patch',
        apiGroup: 'admissionregistration.k8s.io',
        resource: 'mutatingwebhookconfigurations',
        name: 'istio',
      },
    ],
    [
      'list webhook configurations',
      { verb: 'list', apiGroup: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations' },
    ],
    [
      'update another secret in its namespace',
      {
        verb: 'update',
        apiGroup: '',
        resource: 'secrets',
        namespace: 'airflow-downgrade-guard',
        name: 'airflow-downgrade-guard-audit',
      },
    ],
    [
      'use the scale subresource (drain patches the workload itself)',
      {
        verb: 'patch',
        apiGroup: 'apps',
        resource: 'statefulsets',
        subresource: 'scale',
        namespace: 'airflow',
        name: 'airflow-worker',
      },
    ],
    [
      'patch an event (it only creates them)',
      { verb: 'patch', apiGroup: '', resource: 'events', namespace: 'airflow', name: 'e' },
    ],
    [
      'watch replicasets (listed once, for a runner template)',
      { verb: 'watch', apiGroup: 'apps', resource: 'replicasets', namespace: 'airflow' },
    ],
    ['create a deployment', { verb: 'create', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow' }],
  ])('may not %s', (_, r) => {
    expect(authz.authorize(req(r))).toBe(false);
  });

  it('gives other identities nothing, and everything to system:masters', () => {
    const r = { verb: 'get', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow', name: 'x' };
    expect(authz.authorize(req(r, serviceAccountIdentity('airflow', 'airflow-downgrade-guard')))).toBe(false);
    expect(authz.authorize(req(r, { user: 'alice', groups: ['system:authenticated'] }))).toBe(false);
    expect(authz.authorize(req(r, { user: 'admin', groups: ['system:masters'] }))).toBe(true);
  });
});

describe('the guard with RBAC limited to namespace airflow', () => {
  const { authz } = installed({ watchNamespaces: ['airflow'] });

  it('acts in airflow but not in other namespaces or cluster-wide', () => {
    const patch = { verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'x' };
    expect(authz.authorize(req({ ...patch, namespace: 'airflow' }))).toBe(true);
    expect(authz.authorize(req({ ...patch, namespace: 'team-b' }))).toBe(false);
    expect(authz.authorize(req({ verb: 'list', apiGroup: 'apps', resource: 'deployments' }))).toBe(false);
    expect(
      authz.authorize(req({ verb: 'list', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow' })),
    ).toBe(true);
  });
});

describe('RBAC evaluation rules', () => {
  const rules = (rs: RbacObjects['roles'][number]['rules']) => rs;
  const objects: RbacObjects = {
    clusterRoles: [
      { metadata: { name: 'wild' }, rules: rules([{ apiGroups: ['*'], resources: ['*'], verbs: ['get'] }]) },
      {
        metadata: { name: 'any-scale' },
        rules: rules([{ apiGroups: ['apps'], resources: ['*/scale'], verbs: ['update'] }]),
      },
      { metadata: { name: 'urls' }, rules: rules([{ nonResourceURLs: ['/healthz'], verbs: ['get'] }]) },
    ],
    roles: [
      {
        metadata: { name: 'r', namespace: 'a' },
        rules: rules([{ apiGroups: [''], resources: ['configmaps'], verbs: ['*'], resourceNames: ['cm1'] }]),
      },
      {
        metadata: { name: 'r', namespace: 'b' },
        rules: rules([{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }]),
      },
    ],
    roleBindings: [
      {
        metadata: { name: 'rb', namespace: 'a' },
        roleRef: { kind: 'Role', name: 'r' },
        subjects: [{ kind: 'ServiceAccount', name: 'sa' }],
      },
      {
        metadata: { name: 'rb-wild', namespace: 'c' },
        roleRef: { kind: 'ClusterRole', name: 'wild' },
        subjects: [{ kind: 'Group', name: 'system:serviceaccounts:x' }],
      },
      {
        metadata: { name: 'rb-missing', namespace: 'b' },
        roleRef: { kind: 'Role', name: 'nope' },
        subjects: [{ kind: 'User', name: 'bob' }],
      },
    ],
    clusterRoleBindings: [
      {
        metadata: { name: 'crb' },
        roleRef: { kind: 'ClusterRole', name: 'any-scale' },
        subjects: [{ kind: 'User', name: 'alice' }],
      },
      {
        metadata: { name: 'crb-urls' },
        roleRef: { kind: 'ClusterRole', name: 'urls' },
        subjects: [{ kind: 'User', name: 'carol' }],
      },
    ],
  };
  const authz = createRbacAuthorizer(() => objects);
  const sa = serviceAccountIdentity('a', 'sa');

  it('a ServiceAccount subject without namespace means the binding namespace', () => {
    expect(
      authz.authorize(req({ verb: 'delete', apiGroup: '', resource: 'configmaps', namespace: 'a', name: 'cm1' }, sa)),
    ).toBe(true);
    expect(
      authz.authorize(
        req(
          { verb: 'delete', apiGroup: '', resource: 'configmaps', namespace: 'a', name: 'cm1' },
          serviceAccountIdentity('b', 'sa'),
        ),
      ),
    ).toBe(false);
  });

  it('resourceNames restrict to named requests', () => {
    expect(
      authz.authorize(req({ verb: 'get', apiGroup: '', resource: 'configmaps', namespace: 'a', name: 'cm2' }, sa)),
    ).toBe(false);
    expect(authz.authorize(req({ verb: 'list', apiGroup: '', resource: 'configmaps', namespace: 'a' }, sa))).toBe(
      false,
    );
  });

  it('a RoleBinding never grants outside its namespace; a Role of the same name elsewhere is not used', () => {
    expect(authz.authorize(req({ verb: 'list', apiGroup: '', resource: 'pods', namespace: 'b' }, sa))).toBe(false);
  });

  it('group subjects and wildcards, including subresources, within a RoleBinding to a ClusterRole', () => {
    const x = serviceAccountIdentity('x', 'anyone');
    expect(
      authz.authorize(
        req(
          { verb: 'get', apiGroup: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'c', name: 'd' },
          x,
        ),
      ),
    ).toBe(true);
    expect(
      authz.authorize(req({ verb: 'get', apiGroup: 'apps', resource: 'deployments', namespace: 'd', name: 'd' }, x)),
    ).toBe(false);
    expect(authz.authorize(req({ verb: 'list', apiGroup: 'apps', resource: 'deployments', namespace: 'c' }, x))).toBe(
      false,
    );
  });

  it('*/scale matches the scale subresource of any resource, and only that', () => {
    const alice = { user: 'alice', groups: [] };
    expect(
      authz.authorize(
        req(
          {
            verb: 'update',
            apiGroup: 'apps',
            resource: 'statefulsets',
            subresource: 'scale',
            namespace: 'z',
            name: 's',
          },
          alice,
        ),
      ),
    ).toBe(true);
    expect(
      authz.authorize(
        req({ verb: 'update', apiGroup: 'apps', resource: 'statefulsets', namespace: 'z', name: 's' }, alice),
      ),
    ).toBe(false);
    expect(
      authz.authorize(
        req(
          {
            verb: 'update',
            apiGroup: 'apps',
            resource: 'statefulsets',
            subresource: 'status',
            namespace: 'z',
            name: 's',
          },
          alice,
        ),
      ),
    ).toBe(false);
  });

  it('nonResourceURLs rules grant no resource access; missing roles grant nothing', () => {
    expect(
      authz.authorize(
        req({ verb: 'get', apiGroup: '', resource: 'pods', namespace: 'a', name: 'p' }, { user: 'carol', groups: [] }),
      ),
    ).toBe(false);
    expect(
      authz.authorize(
        req({ verb: 'list', apiGroup: '', resource: 'pods', namespace: 'b' }, { user: 'bob', groups: [] }),
      ),
    ).toBe(false);
  });

  it('reads the objects on every call (RBAC changes apply at once)', () => {
    const live: RbacObjects = { roles: [], clusterRoles: [], roleBindings: [], clusterRoleBindings: [] };
    const a = createRbacAuthorizer(() => live);
    const r = req(
      { verb: 'get', apiGroup: '', resource: 'pods', namespace: 'n', name: 'p' },
      { user: 'u', groups: [] },
    );
    expect(a.authorize(r)).toBe(false);
    live.clusterRoles.push({
      metadata: { name: 'c' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }],
    });
    live.clusterRoleBindings.push({
      metadata: { name: 'b' },
      roleRef: { kind: 'ClusterRole', name: 'c' },
      subjects: [{ kind: 'User', name: 'u' }],
    });
    expect(a.authorize(r)).toBe(true);
    expect(a.denials()).toHaveLength(1);
  });
});

describe('recording which grants were used', () => {
  it('lists every granted permission no request used, and shrinks as requests use them', () => {
    const { authz } = installed();
    const all = authz.unusedGrants(guard);
    // Every verb of every GUARD_PERMISSIONS resource shows up once before anything ran.
    const expectedAtoms = GUARD_PERMISSIONS.reduce((n, p) => n + p.resources.length * p.verbs.length, 0);
    expect(all).toHaveLength(expectedAtoms);

    authz.authorize(req({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', namespace: 'airflow', name: 'x' }));
    authz.authorize(req({ verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'airflow' })); // denied: uses nothing
    const unused = authz.unusedGrants(guard);
    expect(unused).toHaveLength(expectedAtoms - 1);
    expect(unused.map(describeGrant)).not.toContain(
      'patch apps/deployments — ClusterRole airflow-downgrade-guard-workloads via ClusterRoleBinding airflow-downgrade-guard-workloads',
    );
    expect(authz.usedGrants().map(describeGrant)).toEqual([
      'patch apps/deployments — ClusterRole airflow-downgrade-guard-workloads via ClusterRoleBinding airflow-downgrade-guard-workloads',
    ]);
    expect(authz.denials().map((d) => `${d.verb} ${d.resource}`)).toEqual(['list secrets']);

    authz.reset();
    expect(authz.unusedGrants(guard)).toHaveLength(expectedAtoms);
    expect(authz.denials()).toEqual([]);
  });

  it('tells namespaces apart when RBAC is per namespace', () => {
    const { authz } = installed({ watchNamespaces: ['a', 'b'] });
    authz.authorize(req({ verb: 'get', apiGroup: '', resource: 'secrets', namespace: 'a', name: 'm' }));
    const unusedSecrets = authz
      .unusedGrants(guard)
      .filter((g) => g.resource === 'secrets' && g.verb === 'get' && !g.resourceNames);
    expect(unusedSecrets.map((g) => g.binding)).toEqual(['RoleBinding b/airflow-downgrade-guard-workloads']);
  });
});

describe('helpers for the simulated API server', () => {
  it('connectVerbs: a websocket exec needs get and create', () => {
    expect(connectVerbs('GET')).toEqual(['get', 'create']);
    expect(connectVerbs('post')).toEqual(['create']);
  });

  it('forbiddenMessage reads like the API server', () => {
    expect(
      forbiddenMessage({
        ...guard,
        verb: 'patch',
        apiGroup: 'apps',
        resource: 'deployments',
        subresource: 'scale',
        namespace: 'airflow',
        name: 'web',
      }),
    ).toBe(
      'deployments/scale "web" is forbidden: User "system:serviceaccount:airflow-downgrade-guard:airflow-downgrade-guard" cannot patch resource "deployments/scale" in API group "apps" in the namespace "airflow"',
    );
    expect(forbiddenMessage({ user: 'u', groups: [], verb: 'list', apiGroup: '', resource: 'nodes' })).toBe(
      'User "u" cannot list resource "nodes" in API group "" at the cluster scope',
    );
  });
});
