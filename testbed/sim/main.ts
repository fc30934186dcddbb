// `npm run sim -- --kubeconfig-out <file> [--database-url URL | --postgres] [--guard-kubeconfig-out <file>]
// [--protobuf-converter <binary>] [--pod-start-delay-ms N]`: the simulated cluster as a standalone
// process that kubectl, Helm and other clients can be pointed at.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { leaveSignalsToCaller, startEmbeddedPostgres, type EmbeddedServer } from '../embedded-postgres.js';
import { buildSimProtobufConverter } from './protobuf-converter.js';
import { startSimCluster, type SimCluster } from './cluster.js';
import { GUARD_NAMESPACE, GUARD_SERVICE_ACCOUNT } from '../start.js';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

const redact = (url: string) => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

interface Options {
  kubeconfigOut: string;
  databaseUrl?: string;
  postgres?: boolean;
  guardKubeconfigOut?: string;
  protobufConverter?: string;
  podStartDelayMs?: number;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('sim')
    .description('Run the simulated Kubernetes API server, controllers and Airflow runtime on 127.0.0.1')
    .requiredOption('--kubeconfig-out <file>', 'where to write the admin kubeconfig')
    .option(
      '--database-url <url>',
      'metadata database for Airflow containers that configure none',
      process.env.DATABASE_URL,
    )
    .option('--postgres', 'start an embedded PostgreSQL as that database when no --database-url/DATABASE_URL is given')
    .option(
      '--guard-kubeconfig-out <file>',
      `also write a kubeconfig with a token of the ServiceAccount ${GUARD_NAMESPACE}/${GUARD_SERVICE_ACCOUNT}`,
    )
    .option(
      '--protobuf-converter <binary>',
      'the testbed/sim/protobuf converter (default: built with Go into the cache on first use)',
      process.env.ADG_SIM_PROTOBUF_CONVERTER,
    )
    .option('--pod-start-delay-ms <ms>', 'delay from scheduling to container start', nonNegativeInt)
    .parse(argv);
  const opts = program.opts<Options>();
  const kubeconfigPath = resolve(opts.kubeconfigOut);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const protobufConverter = opts.protobufConverter ?? (await buildSimProtobufConverter(log));
  let postgres: EmbeddedServer | undefined;
  let databaseUrl = opts.databaseUrl;
  if (!databaseUrl && opts.postgres) {
    log('starting an embedded PostgreSQL');
    postgres = await startEmbeddedPostgres();
    await leaveSignalsToCaller();
    databaseUrl = postgres.url;
  }
  let cluster: SimCluster;
  try {
    cluster = await startSimCluster({
      kubeconfigPath,
      protobufConverter,
      ...(databaseUrl ? { databaseUrl } : {}),
      ...(opts.podStartDelayMs !== undefined ? { podStartDelayMs: opts.podStartDelayMs } : {}),
    });
  } catch (err) {
    await postgres?.destroy();
    throw err;
  }
  const lines = [
    `simulated Kubernetes API server (v1.32) listening on ${cluster.api.url}`,
    `kubeconfig (admin, system:masters) written to ${kubeconfigPath}`,
    `  kubectl --kubeconfig ${kubeconfigPath} get namespaces`,
  ];
  if (opts.guardKubeconfigOut) {
    const guardPath = resolve(opts.guardKubeconfigOut);
    const token = cluster.api.tokens.issueServiceAccountToken(GUARD_NAMESPACE, GUARD_SERVICE_ACCOUNT);
    await writeFile(guardPath, cluster.api.kubeconfig(token, GUARD_NAMESPACE), { mode: 0o600 });
    lines.push(
      `kubeconfig (system:serviceaccount:${GUARD_NAMESPACE}:${GUARD_SERVICE_ACCOUNT}) written to ${guardPath}`,
    );
  }
  lines.push(
    `controllers: Deployment, ReplicaSet, StatefulSet, Job, CronJob, kubelet; Airflow container runtime`,
    databaseUrl
      ? `default metadata database${postgres ? ' (embedded PostgreSQL)' : ''}: ${redact(databaseUrl)}`
      : 'no default metadata database (containers must set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)',
    'press Ctrl-C to stop',
    '',
  );
  // The handlers go in before the ready line: whoever reads it may signal at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping the simulated cluster`);
    cluster
      .stop()
      .then(() => postgres?.destroy())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`error while stopping: ${String(err)}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.stdout.write(lines.join('\n'));
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
