// The same scenarios through @kubernetes/client-node, the client the guard itself uses.
import * as k8s from '@kubernetes/client-node';
import { PassThrough } from 'node:stream';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../testbed/sim/apiserver/index.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { Store } from '../../../testbed/sim/store.js';
import type { ExecHandler, KubeObject } from '../../../testbed/sim/types.js';
import { CHART_MANIFESTS, startTestWebhook, type TestWebhook } from './support.js';

const exec: ExecHandler = async (req, io) => {
  if (req.command[0] === 'exit') return { exitCode: Number(req.command[1]) };
  let input = '';
  for await (const chunk of io.stdin) input += chunk.toString();
  io.stdout(`${req.command.join(' ')}${input ? ` <${input}>` : ''}`);
  return { exitCode: 0 };
};

function statusOf(err: unknown): { code: number; body: any } {
  if (!(err instanceof k8s.ApiException)) throw err;
  return { code: err.code, body: typeof err.body === 'string' ? JSON.parse(err.body) : err.body };
}

async function failure(request: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await request;
  } catch (err) {
    return statusOf(err);
  }
  throw new Error('expected the request to fail');
}

describe('@kubernetes/client-node against the simulated API server', () => {
  let store: Store;
  let api: ApiServer;
  let kc: k8s.KubeConfig;
  let apps: k8s.AppsV1Api;
  let core: k8s.CoreV1Api;
  let batch: k8s.BatchV1Api;
  let webhook: TestWebhook;

  beforeAll(async () => {
    store = new Store({ historyLimit: 50 });
    webhook = await startTestWebhook(() => ({}));
    api = await startApiServer({
      store,
      execHandler: exec,
      authorize: () => false,
      webhookServiceResolver: (namespace, name, port) =>
        namespace === 'airflow' && name === 'guard' && port === 443
          ? { host: '127.0.0.1', port: webhook.port }
          : undefined,
    });
    kc = new k8s.KubeConfig();
    kc.loadFromString(api.kubeconfig());
    apps = kc.makeApiClient(k8s.AppsV1Api);
    core = kc.makeApiClient(k8s.CoreV1Api);
    batch = kc.makeApiClient(k8s.BatchV1Api);
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    for (const doc of parseAllDocuments(CHART_MANIFESTS)) await objects.create(doc.toJS() as k8s.KubernetesObject);
  });

  afterAll(async () => {
    await api?.close();
    await webhook?.close();
  });

  it('lists by label and field selectors', async () => {
    const byLabel = await apps.listNamespacedDeployment({
      namespace: 'airflow',
      labelSelector: 'component in (scheduler, api-server),release=airflow',
    });
    expect(byLabel.items.map((d) => d.metadata?.name)).toEqual(['airflow-api-server', 'airflow-scheduler']);
    const byField = await apps.listDeploymentForAllNamespaces({ fieldSelector: 'metadata.name=airflow-scheduler' });
    expect(byField.items).toHaveLength(1);
    const page = await apps.listNamespacedDeployment({ namespace: 'airflow', limit: 1 });
    expect(page.items).toHaveLength(1);
    const rest = await apps.listNamespacedDeployment({
      namespace: 'airflow',
      limit: 1,
      _continue: page.metadata?._continue ?? '',
    });
    expect(rest.items[0]?.metadata?.name).toBe('airflow-scheduler');
    const bad = await failure(core.listNamespacedPod({ namespace: 'airflow', fieldSelector: 'spec.bogus=1' }));
    expect(bad).toMatchObject({ code: 400, body: { message: 'field label not supported: spec.bogus' } });
    const jobs = await batch.listNamespacedJob({ namespace: 'airflow' });
    expect(jobs.items[0]?.spec?.backoffLimit).toBe(6);
  });

  it('answers a stale update with 409 Conflict exactly as the real server', async () => {
    const d = await apps.readNamespacedDeployment({ name: 'airflow-scheduler', namespace: 'airflow' });
    await apps.patchNamespacedDeployment(
      { name: 'airflow-scheduler', namespace: 'airflow', body: { metadata: { labels: { touched: 'yes' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const err = await failure(
      apps.replaceNamespacedDeployment({ name: 'airflow-scheduler', namespace: 'airflow', body: d }),
    );
    expect(err).toEqual({
      code: 409,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        reason: 'Conflict',
        code: 409,
        message:
          'Operation cannot be fulfilled on deployments.apps "airflow-scheduler": the object has been modified; please apply your changes to the latest version and try again',
        details: { name: 'airflow-scheduler', group: 'apps', kind: 'deployments' },
      },
    });
  });

  it('patches strategically, reads and replaces the scale subresource, dry-runs', async () => {
    await apps.patchNamespacedDeployment(
      {
        name: 'airflow-scheduler',
        namespace: 'airflow',
        body: { spec: { template: { spec: { containers: [{ name: 'scheduler', image: 'apache/airflow:3.0.2' }] } } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const scale = await apps.readNamespacedDeploymentScale({ name: 'airflow-scheduler', namespace: 'airflow' });
    expect(scale.status?.selector).toBe('component=scheduler,release=airflow,tier=airflow');
    await apps.replaceNamespacedDeploymentScale({
      name: 'airflow-scheduler',
      namespace: 'airflow',
      body: { ...scale, spec: { replicas: 0 } },
    });
    const d = await apps.readNamespacedDeployment({ name: 'airflow-scheduler', namespace: 'airflow' });
    expect(d.spec?.replicas).toBe(0);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe('apache/airflow:3.0.2');
    expect(d.spec?.template.spec?.containers[0]?.env).toHaveLength(2);
    const dry = await apps.patchNamespacedStatefulSet(
      {
        name: 'airflow-triggerer',
        namespace: 'airflow',
        dryRun: 'All',
        body: { spec: { updateStrategy: { rollingUpdate: { partition: 5 } } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(dry.spec?.updateStrategy?.rollingUpdate?.partition).toBe(5);
    expect(
      (store.get(RESOURCES.statefulsets, 'airflow', 'airflow-triggerer') as any).spec.updateStrategy.rollingUpdate
        .partition,
    ).toBe(0);
    const job = await batch.patchNamespacedJob(
      {
        name: 'airflow-run-airflow-migrations',
        namespace: 'airflow',
        body: [{ op: 'add', path: '/spec/suspend', value: true }],
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    expect(job.spec?.suspend).toBe(true);
  });

  it('watches from a resourceVersion and gets 410 Expired once history is compacted', async () => {
    const list = await apps.listNamespacedDeployment({ namespace: 'airflow' });
    const events: string[] = [];
    const watch = new k8s.Watch(kc);
    const got = new Promise<void>((resolve) => {
      void watch
        .watch(
          '/apis/apps/v1/namespaces/airflow/deployments',
          {
            resourceVersion: list.metadata?.resourceVersion,
            allowWatchBookmarks: true,
            labelSelector: 'component=api-server',
          },
          (phase, obj) => {
            events.push(`${phase} ${obj.metadata.name}`);
            if (phase === 'MODIFIED') resolve();
          },
          () => undefined,
        )
        .then((ctl) => (controller = ctl));
    });
    let controller: AbortController | undefined;
    await new Promise((r) => setTimeout(r, 100));
    await apps.patchNamespacedDeployment(
      { name: 'airflow-scheduler', namespace: 'airflow', body: { metadata: { labels: { x: '1' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await apps.patchNamespacedDeployment(
      { name: 'airflow-api-server', namespace: 'airflow', body: { spec: { paused: true } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await got;
    controller?.abort();
    expect(events).toEqual(['MODIFIED airflow-api-server']);

    store.compactHistory();
    const expired = await new Promise<{ phase: string; obj: any }>((resolve) => {
      void watch.watch(
        '/apis/apps/v1/namespaces/airflow/deployments',
        { resourceVersion: list.metadata?.resourceVersion },
        (phase, obj) => resolve({ phase, obj }),
        () => undefined,
      );
    });
    expect(expired.phase).toBe('ERROR');
    expect(expired.obj).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
  });

  it('execs with stdout, stdin and the exit status on the error channel', async () => {
    await core.createNamespacedPod({
      namespace: 'airflow',
      body: {
        metadata: { name: 'api-0' },
        spec: { nodeName: 'sim-node', containers: [{ name: 'api-server', image: 'apache/airflow:3.1.0' }] },
      },
    });
    const pod = store.get(RESOURCES.pods, 'airflow', 'api-0') as KubeObject;
    store.update(RESOURCES.pods, {
      ...pod,
      status: { phase: 'Running', containerStatuses: [{ name: 'api-server', ready: true, state: { running: {} } }] },
    });
    const run = (command: string[], input?: string) =>
      new Promise<{ out: string; status: k8s.V1Status }>((resolve, reject) => {
        const stdout = new PassThrough();
        let out = '';
        stdout.on('data', (c: Buffer) => (out += c.toString()));
        const stdin = input === undefined ? null : new PassThrough();
        new k8s.Exec(kc)
          .exec('airflow', 'api-0', 'api-server', command, stdout, null, stdin, false, (status) =>
            setTimeout(() => resolve({ out, status }), 20),
          )
          .then(() => stdin?.end(input))
          .catch(reject);
      });
    const ok = await run(['airflow', 'db', 'downgrade', '--to-version', '3.0.2', '--yes']);
    expect(ok.out).toBe('airflow db downgrade --to-version 3.0.2 --yes');
    expect(ok.status).toEqual({ metadata: {}, status: 'Success' });
    const withInput = await run(['airflow', 'db', 'downgrade'], 'y\n');
    expect(withInput.out).toBe('airflow db downgrade <y\n>');
    const failed = await run(['exit', '4']);
    expect(failed.status).toMatchObject({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '4' }] },
    });
    expect(failed.status.message).toMatch(/^command terminated with non-zero exit code: /);
  });

  it('calls a webhook behind a Service, verifying its certificate for the service DNS name', async () => {
    webhook.seen.length = 0;
    webhook.reply = (req) =>
      req.operation === 'CREATE'
        ? {
            warnings: ['seen by guard'],
            patch: [{ op: 'add', path: '/metadata/annotations', value: { guarded: 'true' } }],
          }
        : {};
    await kc.makeApiClient(k8s.AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
      body: {
        metadata: { name: 'guard' },
        webhooks: [
          {
            name: 'guard.airflow.apache.org',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            clientConfig: {
              service: { namespace: 'airflow', name: 'guard', path: '/mutate' },
              caBundle: webhook.caBundle,
            },
            rules: [
              {
                apiGroups: ['batch'],
                apiVersions: ['v1'],
                resources: ['jobs'],
                operations: ['CREATE'],
                scope: 'Namespaced',
              },
            ],
          },
        ],
      },
    });
    const job = await batch.createNamespacedJob({
      namespace: 'airflow',
      body: {
        metadata: { name: 'j2', labels: { a: 'b' } },
        spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1' }] } } },
      },
    });
    expect(job.metadata?.annotations).toEqual({ guarded: 'true' });
    const review = webhook.seen[0];
    expect(review).toMatchObject({
      operation: 'CREATE',
      name: 'j2',
      namespace: 'airflow',
      dryRun: false,
      oldObject: null,
      kind: { group: 'batch', version: 'v1', kind: 'Job' },
      userInfo: { username: 'admin', groups: ['system:masters', 'system:authenticated'] },
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    });
  });

  it('keeps its connection to a webhook, and resends once when the server dropped a kept-alive connection', async () => {
    webhook.reply = () => ({});
    const before = webhook.connections;
    const suffix = Math.random().toString(36).slice(2, 7);
    const create = (name: string) =>
      batch.createNamespacedJob({
        namespace: 'airflow',
        body: {
          metadata: { name: `${name}-${suffix}` },
          spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1' }] } } },
        },
      });
    for (const name of ['keep-1', 'keep-2', 'keep-3']) await create(name);
    // At most one handshake for three calls (none when the earlier test's connection is still kept).
    expect(webhook.connections - before).toBeLessThanOrEqual(1);
    const kept = webhook.connections;
    webhook.dropNextRequest = true;
    const seen = webhook.seen.length;
    const job = await create('keep-4');
    expect(job.metadata?.name).toBe(`keep-4-${suffix}`);
    expect(webhook.seen.length - seen).toBe(1);
    expect(webhook.connections - kept).toBe(1);
  });

  it('refuses service-account users the real way and honours injected faults', async () => {
    const sa = new k8s.KubeConfig();
    sa.loadFromString(api.kubeconfig(api.tokens.issueServiceAccountToken('airflow', 'guard')));
    const err = await failure(
      sa
        .makeApiClient(k8s.CoreV1Api)
        .connectGetNamespacedPodExec({ name: 'api-0', namespace: 'airflow', command: 'true' }),
    );
    expect(err.code).toBeGreaterThanOrEqual(400);
    const denied = await failure(
      sa.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ name: 'airflow-scheduler', namespace: 'airflow' }),
    );
    expect(denied.body.message).toBe(
      'deployments.apps "airflow-scheduler" is forbidden: User "system:serviceaccount:airflow:guard" cannot get resource "deployments" in API group "apps" in the namespace "airflow"',
    );

    api.faults.push({
      match: { verb: 'patch', resource: 'deployments', name: 'airflow-scheduler' },
      respond: { code: 500, times: 1 },
    });
    const patch = () =>
      apps.patchNamespacedDeployment(
        { name: 'airflow-scheduler', namespace: 'airflow', body: { spec: { paused: true } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    expect((await failure(patch())).code).toBe(500);
    expect((await patch()).spec?.paused).toBe(true);
  });

  it('cascades deletion to dependents through ownerReferences', async () => {
    const owner = await apps.readNamespacedDeployment({ name: 'airflow-api-server', namespace: 'airflow' });
    await apps.createNamespacedReplicaSet({
      namespace: 'airflow',
      body: {
        metadata: {
          name: 'airflow-api-server-abc',
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: 'airflow-api-server',
              uid: owner.metadata?.uid ?? '',
              controller: true,
            },
          ],
        },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x:1' }] } },
        },
      },
    });
    const status = await apps.deleteNamespacedDeployment({ name: 'airflow-api-server', namespace: 'airflow' });
    expect(status.status).toBe('Success');
    await api.settled();
    expect(store.get(RESOURCES.replicasets, 'airflow', 'airflow-api-server-abc')).toBeUndefined();
  });
});
