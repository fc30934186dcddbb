import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_NAMESPACE } from '../../install/names.js';
import { toYamlDocuments } from '../../install/deploy-tree.js';
import {
  InstallOptionsError,
  renderInstallManifests,
  resolveInstallOptions,
  type InstallOptions,
} from '../../install/manifests.js';

/** Exit code for bad option values (commander's own parse errors exit 1). */
export const USAGE_EXIT_CODE = 2;

/** An option-value error that makes commander exit with USAGE_EXIT_CODE. */
export class UsageArgumentError extends InvalidArgumentError {
  constructor(message: string) {
    super(message);
    this.exitCode = USAGE_EXIT_CODE;
  }
}

export interface ManifestsCliOptions {
  namespace?: string;
  watchNamespaces?: string;
  failurePolicy?: string;
  image?: string;
  replicas?: string;
  certMode?: string;
  auditSecret?: string;
  logLevel?: string;
  resources?: string;
  nodeSelector?: string;
  tolerations?: string;
  affinity?: string;
  priorityClass?: string;
  labels?: string;
}

function parseJson(flag: string, value: string): never | unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new InstallOptionsError(`${flag} must be JSON: ${(err as Error).message}`);
  }
}

/** k=v,k2=v2 (as kubectl's --selector without operators). */
function parseKeyValues(flag: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of value.split(',').filter((p) => p.trim() !== '')) {
    const at = pair.indexOf('=');
    if (at <= 0)
      throw new InstallOptionsError(`${flag} takes key=value pairs separated by commas, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

function parseReplicas(value: string): number {
  if (!/^\d+$/.test(value))
    throw new InstallOptionsError(`replicas must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function parseWatchNamespaces(value: string): string[] {
  const names = value.split(',').map((s) => s.trim());
  if (names.some((n) => n.length === 0))
    throw new InstallOptionsError(`--watch-namespaces has an empty entry: ${JSON.stringify(value)}`);
  return names;
}

/** CLI strings → validated install options; throws InstallOptionsError on bad values. */
export function installOptionsFromCli(cli: ManifestsCliOptions): InstallOptions {
  const partial: Partial<InstallOptions> = {};
  if (cli.namespace !== undefined) partial.namespace = cli.namespace;
  if (cli.watchNamespaces !== undefined) partial.watchNamespaces = parseWatchNamespaces(cli.watchNamespaces);
  if (cli.failurePolicy !== undefined) partial.failurePolicy = cli.failurePolicy as InstallOptions['failurePolicy'];
  if (cli.image !== undefined) partial.image = cli.image;
  if (cli.replicas !== undefined) partial.replicas = parseReplicas(cli.replicas);
  if (cli.certMode !== undefined) partial.certMode = cli.certMode as InstallOptions['certMode'];
  if (cli.auditSecret !== undefined) partial.auditSecretName = cli.auditSecret;
  if (cli.logLevel !== undefined) partial.logLevel = cli.logLevel;
  if (cli.resources !== undefined)
    partial.resources = parseJson('--resources', cli.resources) as InstallOptions['resources'];
  if (cli.nodeSelector !== undefined) partial.nodeSelector = parseKeyValues('--node-selector', cli.nodeSelector);
  if (cli.tolerations !== undefined)
    partial.tolerations = parseJson('--tolerations', cli.tolerations) as InstallOptions['tolerations'];
  if (cli.affinity !== undefined)
    partial.affinity = parseJson('--affinity', cli.affinity) as InstallOptions['affinity'];
  if (cli.priorityClass !== undefined) partial.priorityClassName = cli.priorityClass;
  if (cli.labels !== undefined) partial.labels = parseKeyValues('--labels', cli.labels);
  return resolveInstallOptions(partial);
}

/** The install YAML (multi-document) for the given CLI options. */
export function runManifests(cli: ManifestsCliOptions): string {
  return toYamlDocuments(renderInstallManifests(installOptionsFromCli(cli)));
}

export function register(program: Command): void {
  program
    .command('manifests')
    .description(
      'print the install manifests (same source as deploy/) as multi-document YAML, e.g. | kubectl apply -f -',
    )
    .option('--namespace <ns>', "the guard's namespace", DEFAULT_NAMESPACE)
    .option(
      '--watch-namespaces <a,b>',
      'limit RBAC and the webhook to these Airflow namespaces (default: all but kube-system)',
    )
    .option('--failure-policy <policy>', 'webhook failurePolicy: Fail (default, safe) or Ignore (available)')
    .option('--image <image>', 'guard image reference')
    .option('--replicas <n>', 'guard replicas (default 2)')
    .option('--cert-mode <mode>', 'self-managed (default), files (Secret made with `certs generate`) or cert-manager')
    .option('--audit-secret <name>', 'Secret holding the audit database URL under key `url`')
    .option('--log-level <level>', 'trace, debug, info, warn, error or fatal')
    .option(
      '--resources <json>',
      'the guard container\'s resources, e.g. \'{"requests":{"cpu":"100m","memory":"128Mi"}}\'',
    )
    .option('--node-selector <k=v,...>', "nodeSelector of the guard's pods")
    .option('--tolerations <json>', "tolerations of the guard's pods (a JSON list)")
    .option(
      '--affinity <json>',
      "affinity of the guard's pods (a JSON object; default: spread the replicas over nodes; {} for none)",
    )
    .option('--priority-class <name>', "priorityClassName of the guard's pods")
    .option('--labels <k=v,...>', "extra labels on every object and on the guard's pods")
    .action((opts: ManifestsCliOptions, command: Command) => {
      let yaml: string;
      try {
        yaml = runManifests(opts);
      } catch (err) {
        if (err instanceof InstallOptionsError)
          command.error(`error: ${err.message}`, { exitCode: USAGE_EXIT_CODE, code: 'adg.usage' });
        throw err;
      }
      process.stdout.write(yaml);
    });
}
