// `npm run cluster -- --kubeconfig-out <file> [--guard-kubeconfig-out <file>] [--database-url URL] [--verbose]`:
// the real control plane (built from Go modules if needed), our node agent and a Postgres for the
// simulated Airflow containers, on 127.0.0.1 until Ctrl-C.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { KubeRest } from '../../src/k8s/rest.js';
import { redactConnectionString } from '../../src/db/connection.js';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../testbed/embedded-postgres.js';
import { startRealCluster, type RealCluster } from './cluster.js';
import { kubernetesVersion, REPO_ROOT } from './components.js';

const GUARD_NAMESPACE = 'airflow-downgrade-guard';
const GUARD_SERVICE_ACCOUNT = 'airflow-downgrade-guard';
/** What the guard's identity needs of deploy/base (its Deployment, Service and webhook stay out: the guard runs on the host). */
const GUARD_IDENTITY_FILES = ['namespace.yaml', 'serviceaccount.yaml', 'rbac.yaml'];

interface Options {
  kubeconfigOut: string;
  guardKubeconfigOut?: string;
  databaseUrl?: string;
  verbose?: boolean;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('cluster')
    .description(
      'Run a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and a node agent on 127.0.0.1',
    )
    .requiredOption('--kubeconfig-out <file>', 'where to write the admin kubeconfig')
    .option(
      '--guard-kubeconfig-out <file>',
      "also apply the guard's ServiceAccount and RBAC from deploy/base and write a kubeconfig with its token",
    )
    .option(
      '--database-url <url>',
      'metadata database for Airflow containers that configure none (default: an embedded PostgreSQL)',
      process.env.DATABASE_URL,
    )
    .option('--verbose', "print the components' own log lines")
    .parse(argv);
  const opts = program.opts<Options>();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const started = Date.now();
  let postgres: EmbeddedServer | undefined;
  let cluster: RealCluster | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await cluster?.stop();
      await postgres?.destroy();
    })());
  const onSignal = (signal: string) => {
    say(`${signal}: stopping everything this command started`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`error while stopping: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      postgres = await startEmbeddedPostgres();
      databaseUrl = postgres.url;
      // embedded-postgres's async-exit-hook would stop Postgres and exit on Ctrl-C before the control
      // plane is stopped (leaving etcd running): this command's own handler stops everything in order.
      const hook = (await import('async-exit-hook' as string)) as {
        default?: { unhookEvent?: (event: string) => void };
      };
      for (const signal of ['SIGINT', 'SIGTERM']) hook.default?.unhookEvent?.(signal);
    }
    cluster = await startRealCluster({ databaseUrl, log: say, ...(opts.verbose ? { verbose: true } : {}) });
    const kubeconfigPath = resolve(opts.kubeconfigOut);
    writeFileSync(kubeconfigPath, cluster.adminKubeconfig, { mode: 0o600 });
    const lines = [
      `Kubernetes ${kubernetesVersion()} control plane on ${cluster.controlPlane.server} (started in ${((Date.now() - started) / 1000).toFixed(1)} s):`,
      ...cluster.controlPlane.processes.map(({ name, child }) => `  ${name.padEnd(24)} pid ${child.pid}`),
      `  node agent ${cluster.node.nodeName.padEnd(13)} kubelet endpoint https://127.0.0.1:${cluster.node.port} (simulated Airflow containers; exec over WebSocket)`,
      `  postgres                 ${redactConnectionString(databaseUrl)}${postgres ? ' (embedded)' : ''}`,
      `  state and certificates in ${cluster.controlPlane.dir}`,
      `admin kubeconfig (system:masters) written to ${kubeconfigPath}`,
      `  kubectl --kubeconfig ${kubeconfigPath} version`,
    ];
    if (opts.guardKubeconfigOut) {
      const path = resolve(opts.guardKubeconfigOut);
      await applyGuardIdentity(cluster.adminKubeconfig);
      const token = await cluster.serviceAccountToken(GUARD_NAMESPACE, GUARD_SERVICE_ACCOUNT);
      writeFileSync(
        path,
        cluster.controlPlane.kubeconfigWithToken(
          token,
          `system:serviceaccount:${GUARD_NAMESPACE}:${GUARD_SERVICE_ACCOUNT}`,
        ),
        { mode: 0o600 },
      );
      lines.push(
        `guard kubeconfig (ServiceAccount ${GUARD_NAMESPACE}/${GUARD_SERVICE_ACCOUNT}, RBAC from deploy/base, token valid 1 h) written to ${path}`,
      );
    }
    lines.push('press Ctrl-C to stop (every process and temporary directory above goes)');
    say(lines.join('\n'));
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Creates the guard's Namespace, ServiceAccount and RBAC from deploy/base (existing objects are kept). */
async function applyGuardIdentity(adminKubeconfig: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromString(adminKubeconfig);
  const rest = new KubeRest(kc);
  try {
    for (const file of GUARD_IDENTITY_FILES) {
      for (const doc of parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'base', file), 'utf8'))) {
        const obj = doc.toJS() as {
          apiVersion: string;
          kind: string;
          metadata: { name: string; namespace?: string };
        } | null;
        if (!obj) continue;
        const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
        const plural = `${obj.kind.toLowerCase()}s`.replace(/ys$/, 'ies');
        const path = `${base}${obj.metadata.namespace ? `/namespaces/${obj.metadata.namespace}` : ''}/${plural}`;
        await rest
          .request('POST', path, { body: obj })
          .catch((error: { code?: number }) => (error.code === 409 ? undefined : Promise.reject(error)));
      }
    }
  } finally {
    rest.close();
  }
}

main(process.argv).catch((error: unknown) => {
  process.stderr.write(`cluster: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
