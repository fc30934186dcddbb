// The simulated API server driven by the real kubectl binary: if kubectl cannot tell it from a
// real cluster for these operations, neither can the guard's tests and demo.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../testbed/sim/apiserver/index.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { Store } from '../../../testbed/sim/store.js';
import type { ExecHandler } from '../../../testbed/sim/types.js';
import {
  CHART_MANIFESTS,
  kubectlFor,
  removeKubectlDirs,
  startTestWebhook,
  type Kubectl,
  type TestWebhook,
} from './support.js';

const echoExec: ExecHandler = async (req, io) => {
  if (req.command[0] === 'cat') {
    for await (const chunk of io.stdin) io.stdout(chunk);
    return { exitCode: 0 };
  }
  if (req.command[0] === 'exit') return { exitCode: Number(req.command[1]) };
  io.stdout(`${req.container}: ${req.command.join(' ')}\n`);
  io.stderr('to stderr\n');
  return { exitCode: 0 };
};

describe('kubectl against the simulated API server', () => {
  let store: Store;
  let api: ApiServer;
  let kubectl: Kubectl;
  let webhook: TestWebhook;
  const allowReaders = new Set<string>();

  beforeAll(async () => {
    store = new Store();
    webhook = await startTestWebhook(() => ({}));
    webhookPort = webhook.port;
    api = await startApiServer({
      store,
      execHandler: echoExec,
      authorize: (r) => allowReaders.has(`${r.user} ${r.verb} ${r.resource}`),
    });
    kubectl = kubectlFor(api.kubeconfig());
  });

  afterAll(async () => {
    removeKubectlDirs();
    await api?.close();
    await webhook?.close();
  });

  const ok = async (args: string[], input?: string) => {
    const result = await kubectl(args, input === undefined ? {} : { input });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  };
  const deployment = (name: string) => store.get(RESOURCES.deployments, 'airflow', name) as any;

  it('applies chart-shaped manifests and re-applies them unchanged', async () => {
    const first = await ok(['apply', '-f', '-'], CHART_MANIFESTS);
    expect(first).toContain('namespace/airflow created');
    expect(first).toContain('deployment.apps/airflow-scheduler created');
    expect(first).toContain('statefulset.apps/airflow-triggerer created');
    expect(first).toContain('job.batch/airflow-run-airflow-migrations created');
    expect(first).toContain('cronjob.batch/airflow-cleanup created');
    expect(first).toContain('secret/airflow-metadata created');
    const second = await ok(['apply', '-f', '-'], CHART_MANIFESTS);
    expect(second).toContain('deployment.apps/airflow-scheduler unchanged');
    const secret = store.get(RESOURCES.secrets, 'airflow', 'airflow-metadata') as any;
    expect(Buffer.from(secret.data.connection, 'base64').toString()).toContain('postgresql://');
    expect(secret.stringData).toBeUndefined();
  });

  it('gets with label selectors, as JSON and as a table', async () => {
    const list = JSON.parse(await ok(['-n', 'airflow', 'get', 'deploy', '-l', 'component=scheduler', '-o', 'json']));
    expect(list.items.map((d: any) => d.metadata.name)).toEqual(['airflow-scheduler']);
    const names = await ok([
      '-n',
      'airflow',
      'get',
      'deploy,sts',
      '-l',
      'component in (scheduler,triggerer),release',
      '-o',
      'name',
    ]);
    expect(names.trim().split('\n').sort()).toEqual([
      'deployment.apps/airflow-scheduler',
      'statefulset.apps/airflow-triggerer',
    ]);
    const none = await ok([
      '-n',
      'airflow',
      'get',
      'deploy',
      '-l',
      'component!=scheduler,component!=api-server',
      '-o',
      'name',
    ]);
    expect(none.trim()).toBe('');
    const table = await ok(['-n', 'airflow', 'get', 'deploy']);
    expect(table).toMatch(/NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE/);
    expect(table).toMatch(/airflow-api-server\s+0\/1/);
  });

  it('reports errors in the real wording', async () => {
    const missing = await kubectl(['-n', 'airflow', 'get', 'deploy', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Error from server (NotFound): deployments.apps "nope" not found');
    const noNs = await kubectl([
      '-n',
      'ghost',
      'create',
      'configmap',
      'x',
      '--from-literal=a=b',
      '-o',
      'json',
      '--dry-run=client',
    ]);
    expect(noNs.code).toBe(0);
    const created = await kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ghost}\n',
    });
    expect(created.stderr).toContain('namespaces "ghost" not found');
  });

  it('sets images with a strategic merge patch', async () => {
    await ok([
      '-n',
      'airflow',
      'set',
      'image',
      'deploy/airflow-scheduler',
      'scheduler=apache/airflow:3.0.2',
      'wait-for-airflow-migrations=apache/airflow:3.0.2',
    ]);
    const d = deployment('airflow-scheduler');
    expect(d.spec.template.spec.containers[0].image).toBe('apache/airflow:3.0.2');
    expect(d.spec.template.spec.initContainers[0].image).toBe('apache/airflow:3.0.2');
    expect(d.spec.template.spec.containers[0].env).toHaveLength(2);
    expect(d.metadata.generation).toBe(2);
  });

  it('scales through the scale subresource and waits on it with a watch', async () => {
    const waiting = kubectl([
      '-n',
      'airflow',
      'wait',
      '--for=jsonpath={.spec.replicas}=4',
      'deploy/airflow-scheduler',
      '--timeout=15s',
    ]);
    await new Promise((r) => setTimeout(r, 300));
    await ok(['-n', 'airflow', 'scale', 'deploy/airflow-scheduler', '--replicas=4']);
    await ok(['-n', 'airflow', 'scale', 'sts/airflow-triggerer', '--replicas=2']);
    const waited = await waiting;
    expect(waited.stdout).toContain('condition met');
    expect(deployment('airflow-scheduler').spec.replicas).toBe(4);
    expect((store.get(RESOURCES.statefulsets, 'airflow', 'airflow-triggerer') as any).spec.replicas).toBe(2);
    expect(api.requests.some((r) => r.subresource === 'scale' && r.verb === 'patch')).toBe(true);
  });

  it('patches with --type json, merge and strategic', async () => {
    await ok([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-scheduler',
      '--type',
      'json',
      '-p',
      '[{"op":"replace","path":"/spec/replicas","value":2}]',
    ]);
    await ok([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-scheduler',
      '--type',
      'merge',
      '-p',
      '{"metadata":{"annotations":{"a":"b"}}}',
    ]);
    await ok([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-scheduler',
      '--type',
      'strategic',
      '-p',
      '{"spec":{"template":{"spec":{"containers":[{"name":"scheduler","env":[{"name":"EXTRA","value":"1"},{"name":"AIRFLOW__CORE__LOAD_EXAMPLES","$patch":"delete"}]}]}}}}',
    ]);
    const d = deployment('airflow-scheduler');
    expect(d.spec.replicas).toBe(2);
    expect(d.metadata.annotations.a).toBe('b');
    expect(d.spec.template.spec.containers[0].env.map((e: any) => e.name)).toEqual([
      'AIRFLOW__CORE__EXECUTOR',
      'EXTRA',
    ]);
    expect(d.spec.template.spec.containers[0].image).toBe('apache/airflow:3.0.2');
    const bad = await kubectl([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-scheduler',
      '--type',
      'json',
      '-p',
      '[{"op":"test","path":"/spec/replicas","value":9}]',
    ]);
    expect(bad.code).not.toBe(0);
  });

  it('pauses and resumes a rollout', async () => {
    await ok(['-n', 'airflow', 'rollout', 'pause', 'deploy/airflow-api-server']);
    expect(deployment('airflow-api-server').spec.paused).toBe(true);
    const again = await kubectl(['-n', 'airflow', 'rollout', 'pause', 'deploy/airflow-api-server']);
    expect(again.stderr).toContain('is already paused');
    await ok(['-n', 'airflow', 'rollout', 'resume', 'deploy/airflow-api-server']);
    expect(deployment('airflow-api-server').spec.paused).toBeUndefined();
  });

  it('honours a mutating webhook on apply --dry-run=server: warning printed, nothing stored', async () => {
    webhook.seen.length = 0;
    webhook.reply = (req) =>
      req.kind.kind === 'Deployment' && req.operation === 'UPDATE'
        ? {
            warnings: ['airflow-downgrade-guard: would hold this rollout'],
            patch: [{ op: 'add', path: '/spec/paused', value: true }],
          }
        : {};
    await ok(['apply', '-f', '-'], webhookConfig('guard', webhook.caBundle, 'None'));
    const changed = CHART_MANIFESTS.replaceAll('apache/airflow:3.1.0', 'apache/airflow:2.10.5');
    const before = deployment('airflow-api-server');
    const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: changed });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('deployment.apps/airflow-api-server configured (server dry run)');
    expect(dry.stderr).toContain('Warning: airflow-downgrade-guard: would hold this rollout');
    const after = deployment('airflow-api-server');
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.spec.template.spec.containers[0].image).toBe('apache/airflow:3.1.0');
    const seen = webhook.seen.filter((r) => r.kind.kind === 'Deployment');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.dryRun === true)).toBe(true);
    expect(seen[0]?.userInfo.username).toBe('admin');
    expect(seen[0]?.options).toMatchObject({ kind: 'PatchOptions', apiVersion: 'meta.k8s.io/v1', dryRun: ['All'] });

    // For real: the webhook's patch is what gets stored.
    const real = await kubectl([
      '-n',
      'airflow',
      'set',
      'image',
      'deploy/airflow-api-server',
      'api-server=apache/airflow:2.10.5',
    ]);
    expect(real.stderr).toContain('Warning: airflow-downgrade-guard: would hold this rollout');
    expect(deployment('airflow-api-server').spec.paused).toBe(true);
  });

  it('words webhook denials and failures as the real server', async () => {
    webhook.reply = (req) =>
      req.kind.kind === 'Deployment'
        ? { allowed: false, status: { code: 403, message: 'downgrade needs a running 3.1.0 pod' } }
        : {};
    const denied = await kubectl([
      '-n',
      'airflow',
      'scale',
      'deploy/airflow-api-server',
      '--replicas=1',
      '--dry-run=server',
    ]);
    expect(denied.code).toBe(0); // the scale subresource is not in the webhook's rules
    const patchDenied = await kubectl([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-api-server',
      '--type',
      'merge',
      '-p',
      '{"spec":{"replicas":5}}',
    ]);
    expect(patchDenied.stderr).toContain(
      'admission webhook "guard.airflow.apache.org" denied the request: downgrade needs a running 3.1.0 pod',
    );
    // The webhook gave a code but no reason: kubectl then prints no "(Reason)", as with a real server.
    expect(patchDenied.stderr).toMatch(/^Error from server: admission webhook/m);
    webhook.reply = (req) =>
      req.kind.kind === 'Deployment'
        ? { allowed: false, status: { code: 403, reason: 'Forbidden', message: 'held' } }
        : {};
    const withReason = await kubectl([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-api-server',
      '--type',
      'merge',
      '-p',
      '{"spec":{"replicas":5}}',
    ]);
    expect(withReason.stderr).toContain(
      'Error from server (Forbidden): admission webhook "guard.airflow.apache.org" denied the request: held',
    );

    await ok(['apply', '-f', '-'], webhookConfig('guard', webhook.wrongCaBundle, 'None'));
    const tls = await kubectl([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-api-server',
      '--type',
      'merge',
      '-p',
      '{"spec":{"replicas":5}}',
    ]);
    expect(tls.stderr).toContain(
      `Internal error occurred: failed calling webhook "guard.airflow.apache.org": failed to call webhook: Post "https://127.0.0.1:${webhook.port}/mutate?timeout=5s": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    );

    await ok(['apply', '-f', '-'], webhookConfig('guard', webhook.caBundle, 'Some'));
    const sideEffects = await kubectl([
      '-n',
      'airflow',
      'patch',
      'deploy',
      'airflow-api-server',
      '--type',
      'merge',
      '-p',
      '{"spec":{"replicas":5}}',
      '--dry-run=server',
    ]);
    expect(sideEffects.stderr).toContain('admission webhook "guard.airflow.apache.org" does not support dry run');
    await ok(['delete', 'mutatingwebhookconfiguration', 'guard']);
  });

  it('execs in a running pod: output, stdin and exit codes', async () => {
    await ok(
      ['apply', '-f', '-'],
      'apiVersion: v1\nkind: Pod\nmetadata: {name: api-0, namespace: airflow}\nspec:\n  nodeName: sim-node\n  containers:\n  - {name: api-server, image: "apache/airflow:3.1.0"}\n',
    );
    const pending = await kubectl(['-n', 'airflow', 'exec', 'api-0', '--', 'airflow', 'version']);
    expect(pending.code).toBe(1);
    expect(pending.stderr).toContain('container not found ("api-server")');
    await ok([
      '-n',
      'airflow',
      'patch',
      'pod',
      'api-0',
      '--subresource=status',
      '--type',
      'merge',
      '-p',
      '{"status":{"phase":"Running","containerStatuses":[{"name":"api-server","ready":true,"restartCount":0,"image":"apache/airflow:3.1.0","imageID":"","state":{"running":{"startedAt":"2025-01-01T00:00:00Z"}}}]}}',
    ]);
    const out = await kubectl([
      '-n',
      'airflow',
      'exec',
      'api-0',
      '--',
      'airflow',
      'db',
      'downgrade',
      '--to-version',
      '3.0.2',
      '--yes',
    ]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('api-server: airflow db downgrade --to-version 3.0.2 --yes\n');
    expect(out.stderr).toContain('to stderr');
    const failed = await kubectl(['-n', 'airflow', 'exec', 'api-0', '--', 'exit', '3']);
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain('command terminated with exit code 3');
    const cat = await kubectl(['-n', 'airflow', 'exec', '-i', 'api-0', '--', 'cat'], { input: 'y\n' });
    expect(cat.stdout).toBe('y\n');
    const badContainer = await kubectl(['-n', 'airflow', 'exec', 'api-0', '-c', 'nope', '--', 'true']);
    expect(badContainer.stderr).toContain('container nope is not valid for pod api-0');
  });

  it('deletes gracefully, forcibly, and by label', async () => {
    const graceful = await ok(['-n', 'airflow', 'delete', 'pod', 'api-0', '--wait=false']);
    expect(graceful).toContain('pod "api-0" deleted');
    expect((store.get(RESOURCES.pods, 'airflow', 'api-0') as any).metadata.deletionTimestamp).toBeDefined();
    await ok(['-n', 'airflow', 'delete', 'pod', 'api-0', '--grace-period=0', '--force']);
    expect(store.get(RESOURCES.pods, 'airflow', 'api-0')).toBeUndefined();
    await ok(['-n', 'airflow', 'delete', 'job,cronjob', '-l', 'release=airflow']);
    expect(store.list(RESOURCES.jobs, 'airflow').items).toHaveLength(0);
    expect(store.list(RESOURCES.cronjobs, 'airflow').items).toHaveLength(0);
  });

  it('answers a service account without rights with the real 403 message', async () => {
    const sa = kubectlFor(api.kubeconfig(api.tokens.issueServiceAccountToken('airflow', 'reader'), 'airflow'));
    const denied = await sa(['get', 'deploy']);
    expect(denied.stderr).toContain(
      'Error from server (Forbidden): deployments.apps is forbidden: User "system:serviceaccount:airflow:reader" cannot list resource "deployments" in API group "apps" in the namespace "airflow"',
    );
    allowReaders.add('system:serviceaccount:airflow:reader list deployments');
    const allowed = await sa(['get', 'deploy', '-o', 'name']);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('deployment.apps/airflow-scheduler');
  });

  it('deletes a namespace with everything in it', async () => {
    await ok(['delete', 'namespace', 'airflow', '--timeout=20s']);
    expect(store.list(RESOURCES.deployments, 'airflow').items).toHaveLength(0);
    expect((await kubectl(['get', 'ns', 'airflow'])).stderr).toContain('namespaces "airflow" not found');
  });
});

let webhookPort = 0;
function webhookConfig(name: string, caBundle: string, sideEffects: string): string {
  return `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: ${name}
webhooks:
- name: guard.airflow.apache.org
  admissionReviewVersions: [v1]
  sideEffects: ${sideEffects}
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:${webhookPort}/mutate
    caBundle: ${caBundle}
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: airflow}
  objectSelector:
    matchLabels: {tier: airflow}
  rules:
  - apiGroups: [apps]
    apiVersions: [v1]
    resources: [deployments, statefulsets]
    operations: [CREATE, UPDATE]
`;
}
