// `npm run sim -- --kubeconfig-out <file> [--database-url URL] [--pod-start-delay-ms N]`:
// the simulated cluster as a standalone process that kubectl can be pointed at.
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { startSimCluster } from './cluster.js';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('sim')
    .description('Run the simulated Kubernetes API server, controllers and Airflow runtime on 127.0.0.1')
    .requiredOption('--kubeconfig-out <file>', 'where to write the admin kubeconfig')
    .option('--database-url <url>', 'metadata database for Airflow containers that configure none', process.env.DATABASE_URL)
    .option('--pod-start-delay-ms <ms>', 'delay from scheduling to container start', nonNegativeInt)
    .parse(argv);
  const opts = program.opts<{ kubeconfigOut: string; databaseUrl?: string; podStartDelayMs?: number }>();
  const kubeconfigPath = resolve(opts.kubeconfigOut);
  const cluster = await startSimCluster({
    kubeconfigPath,
    ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
    ...(opts.podStartDelayMs !== undefined ? { podStartDelayMs: opts.podStartDelayMs } : {}),
  });
  process.stdout.write(
    [
      `simulated Kubernetes API server (v1.32) listening on ${cluster.api.url}`,
      `kubeconfig (admin, system:masters) written to ${kubeconfigPath}`,
      `  kubectl --kubeconfig ${kubeconfigPath} get namespaces`,
      `controllers: Deployment, ReplicaSet, StatefulSet, Job, CronJob, kubelet; Airflow container runtime`,
      opts.databaseUrl ? `default metadata database: ${opts.databaseUrl.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')}` : 'no default metadata database (containers must set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)',
      'press Ctrl-C to stop',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${signal}: stopping the simulated cluster\n`);
    cluster.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
