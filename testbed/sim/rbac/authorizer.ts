// Kubernetes RBAC evaluation for the simulated API server, with a record of which grants were
// used so tests can list permissions the guard holds but never needed.
// Follows k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac (RuleAllows, ResourceMatches,
// appliesTo): deny by default, any matching rule of any binding allows.

import type { AuthorizationRequest } from '../apiserver/server.js';

export type { AuthorizationRequest };

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface RoleLike {
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[] | null;
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
  apiGroup?: string;
}

interface BindingLike {
  metadata: { name: string; namespace?: string };
  roleRef: { kind: string; name: string; apiGroup?: string };
  subjects?: Subject[] | null;
}

export interface RbacObjects {
  roles: RoleLike[];
  clusterRoles: RoleLike[];
  roleBindings: BindingLike[];
  clusterRoleBindings: BindingLike[];
}

/** One (apiGroup, resource, verb) of one rule, as granted through one binding. */
export interface Grant {
  binding: string; // e.g. 'RoleBinding airflow/airflow-downgrade-guard-workloads'
  role: string; // e.g. 'ClusterRole airflow-downgrade-guard'
  ruleIndex: number;
  apiGroup: string;
  resource: string;
  verb: string;
  resourceNames?: string[];
}

export interface RbacAuthorizer {
  authorize(request: AuthorizationRequest): boolean;
  /** Every grant that allowed at least one request since creation or reset(). */
  usedGrants(): Grant[];
  /** Grants bound to this identity that no allowed request used. */
  unusedGrants(identity: { user: string; groups: string[] }): Grant[];
  /** Requests denied so far (for test failure messages). */
  denials(): AuthorizationRequest[];
  reset(): void;
}

/** Members of this group are allowed everything, as with the real API server. */
export const SUPERUSER_GROUP = 'system:masters';

/** The identity the API server gives a ServiceAccount token. */
export function serviceAccountIdentity(namespace: string, name: string): { user: string; groups: string[] } {
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

/**
 * Verbs an exec/attach/portforward connect request must be allowed. A WebSocket upgrade is a GET
 * (`get`); since the AuthorizePodWebsocketUpgradeCreatePermission gate (default on) the API
 * server also demands `create`, as it does for SPDY's POST.
 */
export function connectVerbs(httpMethod: string): string[] {
  return httpMethod.toUpperCase() === 'GET' ? ['get', 'create'] : ['create'];
}

/** The Forbidden message the real API server returns. */
export function forbiddenMessage(request: AuthorizationRequest): string {
  const resource = request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
  const what = request.name ? `${resource} "${request.name}" is forbidden: ` : '';
  const where = request.namespace ? ` in the namespace "${request.namespace}"` : ' at the cluster scope';
  return `${what}User "${request.user}" cannot ${request.verb} resource "${resource}" in API group "${request.apiGroup}"${where}`;
}

function combinedResource(request: AuthorizationRequest): string {
  return request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
}

const matchesVerb = (verb: string, ruleVerb: string): boolean => ruleVerb === '*' || ruleVerb === verb;
const matchesGroup = (group: string, ruleGroup: string): boolean => ruleGroup === '*' || ruleGroup === group;

function matchesResource(request: AuthorizationRequest, ruleResource: string): boolean {
  if (ruleResource === '*') return true;
  if (ruleResource === combinedResource(request)) return true;
  // `*/scale` grants the scale subresource of every resource; `deployments/*` is not a thing in RBAC.
  return request.subresource !== undefined && ruleResource === `*/${request.subresource}`;
}

function matchesName(rule: PolicyRule, name: string | undefined): boolean {
  if (!rule.resourceNames || rule.resourceNames.length === 0) return true;
  return name !== undefined && rule.resourceNames.includes(name);
}

function subjectMatches(
  subject: Subject,
  bindingNamespace: string | undefined,
  user: string,
  groups: string[],
): boolean {
  switch (subject.kind) {
    case 'User':
      return subject.name === user;
    case 'Group':
      return groups.includes(subject.name);
    case 'ServiceAccount': {
      const ns = subject.namespace || bindingNamespace;
      return ns !== undefined && user === `system:serviceaccount:${ns}:${subject.name}`;
    }
    default:
      return false;
  }
}

interface BoundRole {
  binding: string;
  role: string;
  rules: PolicyRule[];
  /** Namespace the grant is limited to (RoleBinding), or undefined for everywhere (ClusterRoleBinding). */
  namespace: string | undefined;
}

function boundRoles(objects: RbacObjects, user: string, groups: string[]): BoundRole[] {
  const out: BoundRole[] = [];
  const clusterRole = (name: string) => objects.clusterRoles.find((r) => r.metadata.name === name);
  for (const b of objects.clusterRoleBindings) {
    if (b.roleRef.kind !== 'ClusterRole') continue;
    if (!(b.subjects ?? []).some((s) => subjectMatches(s, undefined, user, groups))) continue;
    const role = clusterRole(b.roleRef.name);
    if (role)
      out.push({
        binding: `ClusterRoleBinding ${b.metadata.name}`,
        role: `ClusterRole ${role.metadata.name}`,
        rules: role.rules ?? [],
        namespace: undefined,
      });
  }
  for (const b of objects.roleBindings) {
    const ns = b.metadata.namespace;
    if (ns === undefined) continue;
    if (!(b.subjects ?? []).some((s) => subjectMatches(s, ns, user, groups))) continue;
    const role =
      b.roleRef.kind === 'ClusterRole'
        ? clusterRole(b.roleRef.name)
        : b.roleRef.kind === 'Role'
          ? objects.roles.find((r) => r.metadata.name === b.roleRef.name && r.metadata.namespace === ns)
          : undefined;
    if (role) {
      const roleName =
        b.roleRef.kind === 'Role' ? `Role ${ns}/${role.metadata.name}` : `ClusterRole ${role.metadata.name}`;
      out.push({
        binding: `RoleBinding ${ns}/${b.metadata.name}`,
        role: roleName,
        rules: role.rules ?? [],
        namespace: ns,
      });
    }
  }
  return out;
}

function grantKey(g: Grant): string {
  return [g.binding, g.role, g.ruleIndex, g.apiGroup, g.resource, g.verb].join('|');
}

/** The (group, resource, verb) atoms of a rule that allow the request; empty when it does not. */
function allowingAtoms(bound: BoundRole, ruleIndex: number, request: AuthorizationRequest): Grant[] {
  const rule = bound.rules[ruleIndex]!;
  if (bound.namespace !== undefined && request.namespace !== bound.namespace) return [];
  if (!matchesName(rule, request.name)) return [];
  const atoms: Grant[] = [];
  for (const apiGroup of (rule.apiGroups ?? []).filter((g) => matchesGroup(request.apiGroup, g))) {
    for (const resource of (rule.resources ?? []).filter((r) => matchesResource(request, r))) {
      for (const verb of rule.verbs.filter((v) => matchesVerb(request.verb, v))) {
        atoms.push(atom(bound, ruleIndex, apiGroup, resource, verb));
      }
    }
  }
  return atoms;
}

function atom(bound: BoundRole, ruleIndex: number, apiGroup: string, resource: string, verb: string): Grant {
  const rule = bound.rules[ruleIndex]!;
  return {
    binding: bound.binding,
    role: bound.role,
    ruleIndex,
    apiGroup,
    resource,
    verb,
    ...(rule.resourceNames && rule.resourceNames.length > 0 ? { resourceNames: [...rule.resourceNames] } : {}),
  };
}

export function createRbacAuthorizer(getObjects: () => RbacObjects): RbacAuthorizer {
  const used = new Map<string, Grant>();
  let denied: AuthorizationRequest[] = [];

  function authorize(request: AuthorizationRequest): boolean {
    if (request.groups.includes(SUPERUSER_GROUP)) return true;
    let allowed = false;
    for (const bound of boundRoles(getObjects(), request.user, request.groups)) {
      bound.rules.forEach((_, i) => {
        for (const g of allowingAtoms(bound, i, request)) {
          allowed = true;
          used.set(grantKey(g), g);
        }
      });
    }
    if (!allowed) denied.push({ ...request, groups: [...request.groups] });
    return allowed;
  }

  function unusedGrants(identity: { user: string; groups: string[] }): Grant[] {
    const all: Grant[] = [];
    for (const bound of boundRoles(getObjects(), identity.user, identity.groups)) {
      bound.rules.forEach((rule, i) => {
        for (const apiGroup of rule.apiGroups ?? []) {
          for (const resource of rule.resources ?? []) {
            for (const verb of rule.verbs) all.push(atom(bound, i, apiGroup, resource, verb));
          }
        }
      });
    }
    return all.filter((g) => !used.has(grantKey(g)));
  }

  return {
    authorize,
    usedGrants: () => [...used.values()],
    unusedGrants,
    denials: () => [...denied],
    reset: () => {
      used.clear();
      denied = [];
    },
  };
}

/** Splits a list of Kubernetes objects into the four RBAC kinds (e.g. the install manifests). */
export function rbacObjectsFrom(objects: ReadonlyArray<{ kind: string }>): RbacObjects {
  const of = <T>(kind: string) => objects.filter((o) => o.kind === kind) as unknown as T[];
  return {
    roles: of<RoleLike>('Role'),
    clusterRoles: of<RoleLike>('ClusterRole'),
    roleBindings: of<BindingLike>('RoleBinding'),
    clusterRoleBindings: of<BindingLike>('ClusterRoleBinding'),
  };
}

/** One line per grant, for test output. */
export function describeGrant(g: Grant): string {
  const names = g.resourceNames ? ` (names: ${g.resourceNames.join(', ')})` : '';
  return `${g.verb} ${g.apiGroup || 'core'}/${g.resource}${names} — ${g.role} via ${g.binding}`;
}
