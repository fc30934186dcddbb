// `plan`: what the guard would do with rendered manifests (`helm template … | airflow-downgrade-guard
// plan -f -`), against the live cluster or a stated release state, through the webhook's own
// decide(). Exit 0 no downgrade, 3 a downgrade would be coordinated, 4 undetermined (an Airflow
// version cannot be told, or no namespace was given and the release runs in another one), 1 error
// (one line on stderr; also when the guard would deny a change, or there are no objects at all),
// 2 usage; over several releases the most severe (1 > 4 > 3 > 0).
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import {
  ANNOTATIONS,
  ConfigError,
  parseGuardConfig,
  withUnknownVersionFlags,
  type GuardConfig,
} from '../../core/config.js';
import { isValidRevision } from '../../core/heads.js';
import { parseAirflowVersion } from '../../core/versions.js';
import { evaluateManifests, planExitCode, PLAN_EXIT, type PlanSource } from '../../plan/evaluate.js';
import { formatPlanJson, formatPlanText, PLAN_OUTPUTS, type PlanOutput } from '../../plan/format.js';
import { ClusterAccessError, connect, describeClusterError, firstLine, type KubeConnection } from '../../plan/kube.js';
import { ManifestError, parseManifests, type ManifestObject } from '../../plan/manifests.js';
import { isJsonObject } from '../../core/objects.js';
import { clusterSource, releaseNamespaces, statedSource, type StatedState } from '../../plan/sources.js';
import { resolveManifestVersions } from '../../plan/image-versions.js';
import type { DockerConfig, RegistryOptions } from '../../registry/client.js';
import { UsageArgumentError } from './manifests.js';

export interface PlanCliOptions {
  file: string;
  kubeconfig?: string;
  namespace?: string;
  releaseVersion?: string;
  dbRevision?: string;
  config?: string;
  strict?: boolean;
  unknownVersion?: string;
  user?: string;
  output: PlanOutput;
  /** A .dockerconfigjson: read the labels of images whose tag does not name the version. */
  registryConfig?: string;
  /** Extra CA certificates (PEM) for the registries. */
  registryCaFile?: string;
}

export interface PlanIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Standard input, for `-f -`. */
  stdin(): Promise<string>;
}

class PlanFailure extends Error {}
/** Flags that contradict each other or the configuration: exit 2. */
class PlanUsage extends Error {}

async function readManifests(file: string, io: PlanIo): Promise<string> {
  try {
    return file === '-' ? await io.stdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new PlanFailure(
      `cannot read ${file === '-' ? 'stdin' : file}: ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`,
    );
  }
}

async function loadConfig(options: PlanCliOptions): Promise<GuardConfig> {
  let raw: unknown = {};
  if (options.config !== undefined) {
    let text: string;
    try {
      text = await readFile(options.config, 'utf8');
    } catch (error) {
      throw new PlanFailure(
        `cannot read config ${options.config}: ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`,
      );
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (error) {
      throw new PlanFailure(`config ${options.config} is not valid YAML/JSON: ${firstLine(error)}`);
    }
  }
  let config: GuardConfig;
  try {
    config = parseGuardConfig(raw);
  } catch (error) {
    throw new PlanFailure(`config ${options.config}: ${firstLine(error)}`);
  }
  try {
    return withUnknownVersionFlags(config, options);
  } catch (error) {
    throw new PlanUsage(firstLine(error));
  }
}

async function registryOptions(options: PlanCliOptions): Promise<RegistryOptions> {
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new PlanFailure(
        `cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`,
      );
    }
  };
  let dockerConfig: DockerConfig;
  try {
    dockerConfig = JSON.parse(await read(options.registryConfig as string, 'registry config')) as DockerConfig;
  } catch (error) {
    if (error instanceof PlanFailure) throw error;
    throw new PlanFailure(
      `registry config ${options.registryConfig} is not a .dockerconfigjson (JSON with "auths"): ${firstLine(error)}`,
    );
  }
  return {
    dockerConfigs: [dockerConfig],
    ...(options.registryCaFile !== undefined ? { ca: [await read(options.registryCaFile, 'registry CA file')] } : {}),
  };
}

function statedState(options: PlanCliOptions): StatedState {
  const state: StatedState = {};
  if (options.releaseVersion !== undefined) state.runningVersion = options.releaseVersion;
  if (options.dbRevision !== undefined) state.dbRevision = options.dbRevision;
  return state;
}

/** Runs the plan and prints it; returns the exit code. */
export async function runPlan(options: PlanCliOptions, io: PlanIo): Promise<number> {
  let connection: KubeConnection | undefined;
  try {
    const config = await loadConfig(options);
    const sourceName = options.file === '-' ? 'stdin' : options.file;
    let manifests = parseManifests(await readManifests(options.file, io), sourceName);
    // An empty `helm template` output is a broken pipeline, not "no downgrade".
    if (manifests.length === 0)
      throw new PlanFailure(
        `${sourceName} holds no Kubernetes objects (an empty \`helm template\` output?): nothing to plan`,
      );
    if (options.registryConfig !== undefined) {
      const resolved = await resolveManifestVersions(manifests, config, await registryOptions(options));
      manifests = resolved.manifests;
      for (const r of resolved.resolutions)
        io.stderr(
          r.version
            ? `image ${r.image}: Airflow ${r.version} (image labels)\n`
            : `image ${r.image}: version not read from the registry: ${r.error}\n`,
        );
    }
    const stated = statedState(options);
    const offline = options.kubeconfig === undefined && Object.keys(stated).length > 0;
    let source: PlanSource;
    if (offline) {
      source = statedSource(stated);
    } else {
      connection = connect(options.kubeconfig);
      const overrides =
        Object.keys(stated).length > 0
          ? `; stated ${Object.entries(stated)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}`
          : '';
      source = clusterSource(
        connection.cluster,
        config,
        `cluster ${connection.server} (context ${connection.context}: stored objects and running pods${overrides})`,
        stated,
      );
    }
    const namespace = options.namespace ?? connection?.namespace ?? 'default';
    let report;
    try {
      report = await evaluateManifests(manifests, source, {
        config,
        namespace,
        user: options.user ?? connection?.user ?? 'airflow-downgrade-guard-plan',
      });
    } catch (error) {
      if (connection && !(error instanceof ManifestError))
        throw new PlanFailure(describeClusterError(error, connection.server));
      throw error;
    }
    if (connection && options.namespace === undefined && !namesNamespace(manifests)) {
      const elsewhere = await releasesElsewhere(
        connection,
        config,
        report.releases.map((r) => r.release),
        namespace,
      );
      if (elsewhere.length > 0) {
        io.stderr(
          `undetermined: neither -n nor the manifests name a namespace, so they were evaluated in namespace ${namespace} (${connection.namespace ? "the context's" : 'the default'}), ` +
            `but ${elsewhere.map((e) => `release ${e.release} runs in namespace ${e.namespaces.join(', ')}`).join('; ')}. ` +
            `Render and plan with the release's namespace: helm template -n NS ... | airflow-downgrade-guard plan -n NS -f -\n`,
        );
        return PLAN_EXIT.undetermined;
      }
    }
    io.stdout(options.output === 'json' ? formatPlanJson(report) : formatPlanText(report));
    return planExitCode(report);
  } catch (error) {
    if (error instanceof PlanUsage) {
      io.stderr(`error: ${error.message}\n`);
      return PLAN_EXIT.usage;
    }
    if (
      error instanceof PlanFailure ||
      error instanceof ManifestError ||
      error instanceof ClusterAccessError ||
      error instanceof ConfigError
    ) {
      io.stderr(`error: ${error.message}\n`);
      return PLAN_EXIT.error;
    }
    throw error;
  } finally {
    connection?.close();
  }
}

function namesNamespace(manifests: ManifestObject[]): boolean {
  return manifests.some(
    ({ object }) =>
      isJsonObject(object.metadata) &&
      typeof object.metadata.namespace === 'string' &&
      object.metadata.namespace !== '',
  );
}

async function releasesElsewhere(
  connection: KubeConnection,
  config: GuardConfig,
  releases: string[],
  namespace: string,
): Promise<Array<{ release: string; namespaces: string[] }>> {
  const found: Array<{ release: string; namespaces: string[] }> = [];
  for (const release of new Set(releases)) {
    let namespaces: string[];
    try {
      namespaces = await releaseNamespaces(connection.cluster, config, release);
    } catch (error) {
      throw new PlanFailure(describeClusterError(error, connection.server));
    }
    const others = namespaces.filter((ns) => ns !== namespace);
    if (others.length > 0) found.push({ release, namespaces: others });
  }
  return found;
}

function parseOutput(value: string): PlanOutput {
  if (!(PLAN_OUTPUTS as readonly string[]).includes(value))
    throw new UsageArgumentError(`must be one of ${PLAN_OUTPUTS.join(', ')}`);
  return value as PlanOutput;
}

function parseVersion(value: string): string {
  if (!parseAirflowVersion(value))
    throw new UsageArgumentError(`${JSON.stringify(value.slice(0, 40))} is not an Airflow version (like 3.1.0)`);
  return value;
}

function parseRevision(value: string): string {
  if (!isValidRevision(value))
    throw new UsageArgumentError(
      `${JSON.stringify(String(value).slice(0, 40))} is not an alembic revision (like cc92b33c6709)`,
    );
  return value;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const HELP_AFTER = `
The manifests are what would be applied (e.g. \`helm template\` output, multi-document YAML or
JSON); kinds other than Deployment, StatefulSet, Job and CronJob are listed as not checked.
Each workload is decided like the API server would send it to the webhook: UPDATE with the
stored object when it exists, else CREATE, as a dry run.

Release state:
  (default)               the live cluster (--kubeconfig, else KUBECONFIG / ~/.kube/config):
                          stored objects, running pods' versions, open operations
  --release-version/--db-revision without --kubeconfig
                          offline: every manifest is a CREATE against the stated state
  both                    the cluster, with the stated values winning over the pods'

Give the release's namespace to both: \`helm template\` without -n renders objects that name
none, and plan would evaluate them in the context's namespace. When neither -n nor the
manifests name a namespace and a release of that name runs in another namespace, plan says
so and exits 4. (\`helm upgrade --dry-run=server\` renders on the client and never reaches the
webhook; \`kubectl apply --dry-run=server -f rendered.yaml\` does, and prints the plan.)

Examples:
  helm template airflow apache-airflow/airflow -n airflow --set defaultAirflowTag=3.0.2 \\
    | airflow-downgrade-guard plan -n airflow -f -
  airflow-downgrade-guard plan -f rendered.yaml --release-version 3.1.0 --output json
  airflow-downgrade-guard plan -f rendered.yaml --registry-config ~/.docker/config.json

Exit codes (over several releases the most severe wins: 1 > 4 > 3 > 0):
  0  no downgrade
  1  error (unreadable file, no objects at all, bad YAML, cluster unreachable) or a change
     the guard would deny
  2  bad flags
  3  a downgrade would be coordinated
  4  undetermined: the Airflow version of a workload (or of the running release) cannot be
     told (set annotation ${ANNOTATIONS.airflowVersion}, use an image tag that names it, or
     give --registry-config so the version is read from the image's labels
     org.apache.airflow.version / org.opencontainers.image.version), or no namespace was
     given and the release runs in another namespace (see above)`;

export function register(program: Command): void {
  program
    .command('plan')
    .description(
      'show what the guard would do with rendered manifests, against the live cluster or a stated release state',
    )
    .requiredOption('-f, --file <path>', "manifests (multi-document YAML or JSON), or '-' for stdin")
    .option(
      '--kubeconfig <path>',
      'kubeconfig of the cluster to compare against (default: KUBECONFIG or ~/.kube/config)',
    )
    .option('-n, --namespace <ns>', "namespace of objects that name none (default: the context's, else default)")
    .option(
      '--release-version <version>',
      'the Airflow version the release runs now (offline without --kubeconfig)',
      parseVersion,
    )
    .option(
      '--db-revision <revision>',
      "the metadata database's alembic revision (offline without --kubeconfig)",
      parseRevision,
    )
    .option('--config <file>', 'guard configuration (YAML or JSON), as the webhook runs with')
    .option(
      '--unknown-version <policy>',
      'decide as a guard with this setting: hold (default) or allow (unknown versions exit 4) | deny (exit 1)',
    )
    .option('--strict', 'deprecated alias of --unknown-version deny')
    .option(
      '--registry-config <file>',
      'a .dockerconfigjson: read the Airflow version of private or custom images from their labels in the registry',
    )
    .option('--registry-ca-file <file>', 'extra CA certificates (PEM) for the registries')
    .option('--user <name>', 'the user the requests are attributed to (trusted users pass untouched)')
    .option('--output <format>', PLAN_OUTPUTS.join(' | '), parseOutput, 'text' as PlanOutput)
    .addHelpText('after', HELP_AFTER)
    .action(async (options: PlanCliOptions) => {
      const code = await runPlan(options, {
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stderr.write(text),
        stdin: readStdin,
      });
      if (code !== 0) process.exitCode = code;
    });
}
