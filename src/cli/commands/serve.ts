// `airflow-downgrade-guard serve`: the webhook and the coordinator (see src/serve/).
import type { Command } from 'commander';
import { CERT_MODES } from '../../install/serve-contract.js';
import { loadServeConfig, ServeConfigError, splitList } from '../../serve/config.js';
import { startGuard } from '../../serve/guard.js';
import { createLogger } from '../../log/logger.js';

interface ServeFlags {
  config?: string;
  host?: string;
  port?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  certMode?: string;
  kubeconfig?: string;
  watchNamespaces?: string;
  auditDatabaseUrl?: string;
  metadataDatabaseUrl?: string;
  identity?: string;
  logLevel?: string;
  maxConcurrentExecs?: string;
  coordinatorNice?: string;
  execTimeoutMs?: string;
  drainTimeoutMs?: string;
  rolloutSettleMs?: string;
  stallTimeoutMs?: string;
  order?: string;
  leaseDurationSeconds?: string;
  strict?: boolean;
  unknownVersion?: string;
  trustedUsername?: string[];
  certExtraNames?: string;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description(
      'run the HTTPS admission webhook and the drain coordinator (flags > ADG_* environment > --config file)',
    )
    .option(
      '--config <file>',
      'YAML or JSON file with any of the options below (camelCase) and `guard:` decision settings',
    )
    .option('--host <addr>', 'address to listen on (default 0.0.0.0)')
    .option('--port <n>', 'HTTPS port (ADG_PORT, default 8443)')
    .option('--cert-mode <mode>', `${CERT_MODES.join(' | ')} (ADG_CERT_MODE, default files)`)
    .option('--tls-cert-file <file>', 'serving certificate, PEM (ADG_TLS_CERT_FILE)')
    .option('--tls-key-file <file>', 'serving key, PEM (ADG_TLS_KEY_FILE)')
    .option(
      '--cert-extra-names <a,b>',
      'self-managed mode: extra DNS names or IP addresses of the serving certificate, for a webhook registered by URL (e.g. 127.0.0.1)',
    )
    .option('--kubeconfig <file>', 'kubeconfig (KUBECONFIG); in-cluster configuration when unset')
    .option('--watch-namespaces <a,b>', 'namespaces to guard (ADG_WATCH_NAMESPACES); all when empty')
    .option('--audit-database-url <url>', 'Postgres URL of the audit store (ADG_AUDIT_DATABASE_URL)')
    .option(
      '--metadata-database-url <url>',
      'metadata DB for every release without the metadata-secret annotation, instead of what its pods use (ADG_METADATA_DATABASE_URL)',
    )
    .option('--identity <name>', 'this replica in Leases (POD_NAME, default hostname)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (ADG_LOG_LEVEL)')
    .option('--max-concurrent-execs <n>', 'downgrades running at once across releases (default 4)')
    .option(
      '--coordinator-nice <n>',
      'nice steps the coordinator thread runs below the admission thread, Linux (default 5; 0 disables)',
    )
    .option('--exec-timeout-ms <ms>', 'timeout of one downgrade command (default 900000)')
    .option('--drain-timeout-ms <ms>', 'wait for old pods before deleting them (default 600000)')
    .option(
      '--rollout-settle-ms <ms>',
      'scale down a workload the rollout has not applied only this long after the operation opened (default 5000)',
    )
    .option(
      '--order <order>',
      'drain-first (default: no pod ever runs on a schema it does not match) or downgrade-first (shorter outage)',
    )
    .option(
      '--stall-timeout-ms <ms>',
      'hold an operation that waits this long on something that may never come (default 600000)',
    )
    .option('--lease-duration-seconds <s>', 'per-release Lease duration (default 15)')
    .option(
      '--unknown-version <policy>',
      'a change whose Airflow version cannot be told: hold (default: held until resolved from the image) | allow (with a warning) | deny (guard.unknownVersion)',
    )
    .option('--strict', 'deprecated alias of --unknown-version deny')
    .option(
      '--trusted-username <user...>',
      'users whose changes pass untouched (the guard adds its own ServiceAccount)',
    )
    .action(async (flags: ServeFlags) => {
      let config;
      try {
        config = loadServeConfig({
          ...flags,
          ...(flags.watchNamespaces !== undefined ? { watchNamespaces: splitList(flags.watchNamespaces) } : {}),
          ...(flags.certExtraNames !== undefined ? { certExtraNames: splitList(flags.certExtraNames) } : {}),
        });
      } catch (error) {
        if (error instanceof ServeConfigError) {
          process.stderr.write(`airflow-downgrade-guard serve: ${error.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw error;
      }
      const logger = createLogger({ level: config.logLevel });
      const guard = await startGuard(config, logger);
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string): void => {
          logger.info({ signal }, 'shutting down');
          // stop() logs its own failures; the process ends either way.
          void guard.stop().finally(resolve);
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
    });
}
