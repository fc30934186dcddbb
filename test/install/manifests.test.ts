import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AIRFLOW_LABEL_CONVENTIONS,
  renderInstallManifests,
  resolveInstallOptions,
  type Manifest,
} from '../../src/install/manifests.js';
import { CONTAINER_PORT, GUARD_VERSION, RUN_AS_USER, TLS_SECRET_NAME } from '../../src/install/names.js';
import { GUARD_PERMISSIONS, toPolicyRule } from '../../src/install/permissions.js';
import { SERVE_ENV } from '../../src/install/serve-contract.js';

type Obj = Record<string, any>;

function find(objects: Manifest[], kind: string, name?: string, namespace?: string): Obj {
  const found = objects.find(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (!found) throw new Error(`no ${kind} ${namespace ?? ''}/${name ?? ''}`);
  return found as Obj;
}

function container(objects: Manifest[]): Obj {
  return find(objects, 'Deployment').spec.template.spec.containers[0];
}

function envValue(objects: Manifest[], name: string): Obj | undefined {
  return container(objects).env.find((e: Obj) => e.name === name);
}

// Label selector semantics (In / NotIn / Exists / DoesNotExist), as the API server applies them.
function selects(selector: Obj, labels: Record<string, string>): boolean {
  const exprs: Obj[] = selector.matchExpressions ?? [];
  const matchLabels: Record<string, string> = selector.matchLabels ?? {};
  return (
    Object.entries(matchLabels).every(([k, v]) => labels[k] === v) &&
    exprs.every((e) => {
      const has = e.key in labels;
      switch (e.operator) {
        case 'In':
          return has && e.values.includes(labels[e.key]);
        case 'NotIn':
          return !has || !e.values.includes(labels[e.key]);
        case 'Exists':
          return has;
        case 'DoesNotExist':
          return !has;
        default:
          throw new Error(`operator ${e.operator}`);
      }
    })
  );
}

describe('renderInstallManifests with defaults', () => {
  const objects = renderInstallManifests();

  it('renders the install in apply order, webhook last', () => {
    expect(objects.map((o) => o.kind)).toEqual([
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'MutatingWebhookConfiguration',
    ]);
    for (const o of objects) expect(o.metadata.labels?.['app.kubernetes.io/version']).toBe(GUARD_VERSION);
  });

  it('runs two hardened replicas spread over nodes', () => {
    const deployment = find(objects, 'Deployment', 'airflow-downgrade-guard', 'airflow-downgrade-guard');
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    expect(pod.serviceAccountName).toBe('airflow-downgrade-guard');
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm).toEqual({
      topologyKey: 'kubernetes.io/hostname',
      labelSelector: { matchLabels: deployment.spec.selector.matchLabels },
    });
    const c = container(objects);
    expect(c.args).toEqual(['serve']);
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: RUN_AS_USER,
      runAsGroup: RUN_AS_USER,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.ports).toEqual([{ name: 'https', containerPort: CONTAINER_PORT, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'https', scheme: 'HTTPS' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } });
    // Pod labels must satisfy the Deployment's selector.
    expect(selects(deployment.spec.selector, deployment.spec.template.metadata.labels)).toBe(true);
  });

  it('passes serve its configuration through the documented env vars', () => {
    const names = container(objects).env.map((e: Obj) => e.name);
    const known: string[] = Object.values(SERVE_ENV);
    for (const n of names) expect(known).toContain(n);
    expect(envValue(objects, 'ADG_CERT_MODE')?.value).toBe('self-managed');
    expect(envValue(objects, 'ADG_TLS_SECRET_NAME')?.value).toBe(TLS_SECRET_NAME);
    expect(envValue(objects, 'ADG_WATCH_NAMESPACES')?.value).toBe('');
    expect(envValue(objects, 'POD_NAMESPACE')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    // The audit database password never appears in the manifests: a Secret reference only.
    expect(envValue(objects, 'ADG_AUDIT_DATABASE_URL')).toEqual({
      name: 'ADG_AUDIT_DATABASE_URL',
      valueFrom: { secretKeyRef: { name: 'airflow-downgrade-guard-audit', key: 'url', optional: true } },
    });
  });

  it('keeps one replica up through voluntary disruptions and serves 443 → https', () => {
    const pdb = find(objects, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector).toEqual(find(objects, 'Deployment').spec.selector);
    const svc = find(objects, 'Service');
    expect(svc.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);
    expect(svc.spec.selector).toEqual(find(objects, 'Deployment').spec.selector.matchLabels);
  });

  it('configures the webhook as documented', () => {
    const config = find(objects, 'MutatingWebhookConfiguration', 'airflow-downgrade-guard');
    expect(config.webhooks).toHaveLength(AIRFLOW_LABEL_CONVENTIONS.length);
    const names = config.webhooks.map((w: Obj) => w.name);
    expect(new Set(names).size).toBe(names.length);
    for (const w of config.webhooks) {
      // A webhook name must be a fully qualified DNS subdomain with at least three labels.
      expect(w.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$/);
      expect(w.clientConfig).toEqual({
        service: { namespace: 'airflow-downgrade-guard', name: 'airflow-downgrade-guard', path: '/mutate', port: 443 },
      });
      expect(w.rules).toEqual([
        {
          apiGroups: ['apps'],
          apiVersions: ['v1'],
          resources: ['deployments', 'statefulsets'],
          operations: ['CREATE', 'UPDATE'],
          scope: 'Namespaced',
        },
        {
          apiGroups: ['batch'],
          apiVersions: ['v1'],
          resources: ['jobs', 'cronjobs'],
          operations: ['CREATE', 'UPDATE'],
          scope: 'Namespaced',
        },
      ]);
      expect(w).toMatchObject({
        failurePolicy: 'Fail',
        timeoutSeconds: 5,
        sideEffects: 'NoneOnDryRun',
        admissionReviewVersions: ['v1'],
        matchPolicy: 'Equivalent',
        reinvocationPolicy: 'Never',
      });
      expect(w.namespaceSelector).toEqual({
        matchExpressions: [
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'airflow-downgrade-guard'] },
        ],
      });
    }
  });

  it('sends each Airflow workload exactly once and nothing else', () => {
    const config = find(objects, 'MutatingWebhookConfiguration');
    const choices: Array<[string, Array<string | undefined>]> = [
      ['tier', [undefined, 'airflow', 'other']],
      ['app', [undefined, 'airflow', 'other']],
      ['app.kubernetes.io/name', [undefined, 'airflow', 'other']],
      ['airflow-downgrade-guard/enabled', [undefined, 'true', 'false']],
    ];
    let combos: Array<Record<string, string>> = [{}];
    for (const [key, values] of choices) {
      combos = combos.flatMap((labels) => values.map((v) => (v === undefined ? labels : { ...labels, [key]: v })));
    }
    expect(combos).toHaveLength(81);
    for (const labels of combos) {
      const matched = config.webhooks.filter((w: Obj) => selects(w.objectSelector, labels)).length;
      const optedOut = labels['airflow-downgrade-guard/enabled'] === 'false';
      const airflow =
        labels.tier === 'airflow' ||
        labels.app === 'airflow' ||
        labels['app.kubernetes.io/name'] === 'airflow' ||
        labels['airflow-downgrade-guard/enabled'] === 'true';
      expect({ labels, matched }).toEqual({ labels, matched: airflow && !optedOut ? 1 : 0 });
    }
  });

  it('grants exactly GUARD_PERMISSIONS, cluster-wide for the Airflow namespaces', () => {
    const byName = (kind: string, name: string) => find(objects, kind, name).rules;
    const rulesOf = (scope: string) => GUARD_PERMISSIONS.filter((p) => p.scope === scope).map(toPolicyRule);
    expect(byName('ClusterRole', 'airflow-downgrade-guard-workloads')).toEqual(rulesOf('airflow-namespaces'));
    expect(byName('ClusterRole', 'airflow-downgrade-guard')).toEqual(rulesOf('cluster'));
    expect(find(objects, 'Role', 'airflow-downgrade-guard', 'airflow-downgrade-guard').rules).toEqual(
      rulesOf('own-namespace'),
    );
    for (const binding of objects.filter((o) => o.kind.endsWith('Binding')) as Obj[]) {
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'airflow-downgrade-guard', namespace: 'airflow-downgrade-guard' },
      ]);
    }
  });

  it('grants no wildcard, no secret listing, and webhook access by name only', () => {
    const rules: Obj[] = objects.flatMap((o) => ((o as Obj).rules as Obj[] | undefined) ?? []);
    for (const r of rules) {
      expect([...r.apiGroups, ...r.resources, ...r.verbs]).not.toContain('*');
      if (r.resources.includes('secrets')) expect(r.verbs).not.toEqual(expect.arrayContaining(['list']));
      if (r.resources.includes('mutatingwebhookconfigurations'))
        expect(r.resourceNames).toEqual(['airflow-downgrade-guard']);
    }
    const execRule = rules.find((r) => r.resources.includes('pods/exec'));
    expect(execRule?.verbs.sort()).toEqual(['create', 'get']);
  });
});

describe('renderInstallManifests with options', () => {
  it('limits RBAC and the webhook to the watched namespaces', () => {
    const objects = renderInstallManifests({ watchNamespaces: ['airflow', 'airflow-2'], namespace: 'guard' });
    expect(
      objects.find((o) => o.metadata.name === 'airflow-downgrade-guard-workloads' && o.kind.startsWith('Cluster')),
    ).toBeUndefined();
    for (const ns of ['airflow', 'airflow-2']) {
      expect(find(objects, 'Role', 'airflow-downgrade-guard-workloads', ns).rules).toEqual(
        GUARD_PERMISSIONS.filter((p) => p.scope === 'airflow-namespaces').map(toPolicyRule),
      );
      expect(find(objects, 'RoleBinding', 'airflow-downgrade-guard-workloads', ns).roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: 'airflow-downgrade-guard-workloads',
      });
    }
    for (const w of find(objects, 'MutatingWebhookConfiguration').webhooks) {
      expect(w.namespaceSelector).toEqual({
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['airflow', 'airflow-2'] }],
      });
      expect(w.clientConfig.service.namespace).toBe('guard');
    }
    expect(envValue(objects, 'ADG_WATCH_NAMESPACES')?.value).toBe('airflow,airflow-2');
  });

  it('applies failure policy, image and replicas; no PDB for a single replica', () => {
    const objects = renderInstallManifests({
      failurePolicy: 'Ignore',
      image: 'registry.local:5000/guard:dev',
      replicas: 1,
    });
    for (const w of find(objects, 'MutatingWebhookConfiguration').webhooks) expect(w.failurePolicy).toBe('Ignore');
    expect(container(objects).image).toBe('registry.local:5000/guard:dev');
    expect(find(objects, 'Deployment').spec.replicas).toBe(1);
    expect(objects.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it('files mode mounts the Secret and drops the certificate permissions', () => {
    const objects = renderInstallManifests({ certMode: 'files' });
    expect(envValue(objects, 'ADG_CERT_MODE')?.value).toBe('files');
    expect(envValue(objects, 'ADG_TLS_CERT_FILE')?.value).toBe('/etc/airflow-downgrade-guard/tls/tls.crt');
    expect(find(objects, 'Deployment').spec.template.spec.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: TLS_SECRET_NAME },
    });
    expect(objects.some((o) => o.kind === 'ClusterRole' && o.metadata.name === 'airflow-downgrade-guard')).toBe(false);
    // Nothing left to do in its own namespace: no Role there at all.
    expect(
      objects.filter(
        (o) => o.metadata.namespace === 'airflow-downgrade-guard' && (o.kind === 'Role' || o.kind === 'RoleBinding'),
      ),
    ).toEqual([]);
  });

  it('cert-manager mode adds an Issuer, a Certificate and the CA-injection annotation', () => {
    const objects = renderInstallManifests({ certMode: 'cert-manager', namespace: 'guard' });
    const certificate = find(objects, 'Certificate', 'airflow-downgrade-guard', 'guard');
    expect(certificate.spec.secretName).toBe(TLS_SECRET_NAME);
    expect(certificate.spec.dnsNames).toContain('airflow-downgrade-guard.guard.svc');
    expect(find(objects, 'Issuer').spec).toEqual({ selfSigned: {} });
    expect(find(objects, 'MutatingWebhookConfiguration').metadata.annotations).toEqual({
      'cert-manager.io/inject-ca-from': 'guard/airflow-downgrade-guard',
    });
    expect(envValue(objects, 'ADG_CERT_MODE')?.value).toBe('files');
  });

  it.each([
    [{ namespace: 'Bad' }, /namespace must be a DNS label/],
    [{ namespace: 'kube-system' }, /kube-system/],
    [{ watchNamespaces: ['airflow', 'airflow'] }, /listed twice/],
    [{ watchNamespaces: ['airflow-downgrade-guard'] }, /own namespace/],
    [{ watchNamespaces: ['kube-system'] }, /kube-system/],
    [{ failurePolicy: 'Sometimes' as never }, /Fail or Ignore/],
    [{ image: 'has space:1' }, /not an image reference/],
    [{ image: 'UPPER/case' }, /not an image reference/],
    [{ image: 'ghcr.io/x/guard:bad/tag' }, /not an image reference/],
    [{ image: 'ghcr.io/x/guard@sha256:short' }, /not an image reference/],
    [{ image: '' }, /not an image reference/],
    [{ replicas: 0 }, /replicas/],
    [{ replicas: 2.5 }, /replicas/],
    [{ certMode: 'vault' as never }, /cert mode/],
    [{ logLevel: 'loud' }, /log level/],
  ])('rejects %j', (options, message) => {
    expect(() => resolveInstallOptions(options)).toThrow(message);
  });

  it('accepts image references with registry port and digest', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    for (const image of [
      'guard',
      'localhost/guard',
      'localhost:5000/guard:1',
      'docker.io/library/node:24-slim',
      'ghcr.io/x/guard:1.0',
      'registry.local:5000/team/guard:dev-1',
      `ghcr.io/x/guard@${digest}`,
      `ghcr.io/x/guard:1.0@${digest}`,
    ]) {
      expect(resolveInstallOptions({ image }).image).toBe(image);
    }
  });

  it('GUARD_VERSION follows package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(GUARD_VERSION).toBe(pkg.version);
  });
});
