// The coordinator's side of resolving an image's Airflow version (the resolve step's resolveImage):
// the resolution cache, else the image's labels read from its registry with the pull credentials the
// pod would use (its imagePullSecrets and its ServiceAccount's, .dockerconfigjson), else a short-lived
// probe pod from the held template running the fixed argv `airflow version`. Never on the admission
// path: admission only reads the cache's snapshot.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { parseImageReference, versionFromLabels } from '../core/images.js';
import { isJsonObject, valueAt, type WorkloadKind } from '../core/objects.js';
import type { Resolution, ResolutionCache } from '../core/resolution-cache.js';
import { parseAirflowVersion } from '../core/versions.js';
import type { Cluster } from '../k8s/cluster.js';
import type { ExecRunner } from '../k8s/exec.js';
import { readImageConfig, type DockerConfig, type RegistryOptions } from '../registry/client.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from './operation.js';

/** The only command a probe pod runs (by exec, into its idle main container). */
export const PROBE_ARGV: readonly string[] = ['airflow', 'version'];
export const PROBE_LABEL = 'airflow-downgrade-guard/probe-for';
/** A probe pod outlives a crashed coordinator by at most this long (its own deadline). */
const PROBE_LIFETIME_SECONDS = 300;
const PROBE_POLL_MS = 200;
/** After a failed resolution the image is not tried again (no new probe pod) for this long, doubling up to the cap. */
const RETRY_AFTER_MS = 15_000;
const RETRY_CAP_MS = 10 * 60_000;

export interface ImageResolverOptions {
  cluster: Cluster;
  exec: ExecRunner;
  logger: Logger;
  cache: ResolutionCache;
  /** Registry mirrors, CA bundles and the request timeout (guard configuration). */
  registry: Omit<RegistryOptions, 'dockerConfigs'>;
  /** How long a probe pod may take to start and answer. */
  probeTimeoutMs: number;
  now?: () => number;
  /** Reads an image's config; the registry client unless a test gives another. */
  readConfig?: typeof readImageConfig;
}

/** Where the image is used: a held workload's pod template, or a running pod (its own template). */
export interface ImageUse {
  namespace: string;
  release: string;
  image: string;
  /** e.g. deployment/airflow-scheduler, for messages and the probe pod's name. */
  source: string;
  template: Record<string, unknown>;
}

export class ImageResolver {
  private readonly now: () => number;
  private readonly readConfig: typeof readImageConfig;
  private readonly failures = new Map<string, { error: string; attempts: number; retryAt: number }>();

  constructor(private readonly options: ImageResolverOptions) {
    this.now = options.now ?? Date.now;
    this.readConfig = options.readConfig ?? readImageConfig;
  }

  /** What admission and the coordinator's views read: the cached version of an image, never waiting. */
  readonly lookup = (image: string): string | undefined => this.options.cache.get(image, this.now());

  /** The snapshot admission decides with (ReleaseState.imageVersions). */
  snapshot(): Readonly<Record<string, string>> {
    return this.options.cache.snapshot(this.now());
  }

  async resolve(use: ImageUse): Promise<Resolution> {
    const began = this.now();
    const cached = this.lookup(use.image);
    if (cached !== undefined) return { version: cached, method: 'cache', durationMs: 0 };
    const failed = this.failures.get(use.image);
    if (failed && began < failed.retryAt)
      throw new Error(`${failed.error} (tried again in ${Math.ceil((failed.retryAt - began) / 1000)} s)`);
    try {
      const resolution = await this.resolveUncached(use, began);
      this.failures.delete(use.image);
      return resolution;
    } catch (error) {
      const attempts = (failed?.attempts ?? 0) + 1;
      const retryAt = this.now() + Math.min(RETRY_AFTER_MS * 2 ** (attempts - 1), RETRY_CAP_MS);
      this.failures.set(use.image, { error: (error as Error).message, attempts, retryAt });
      if (this.failures.size > 1000) this.failures.delete(this.failures.keys().next().value as string);
      throw error;
    }
  }

  private async resolveUncached(use: ImageUse, began: number): Promise<Resolution> {
    const reference = parseImageReference(use.image);
    if (!reference) throw new Error(`'${use.image.slice(0, 120)}' is not an image reference`);
    const { template } = use;
    let registryProblem: string;
    try {
      const dockerConfigs = await this.pullCredentials(use.namespace, template);
      const { digest, labels } = await this.readConfig(reference, { ...this.options.registry, dockerConfigs });
      const version = versionFromLabels(reference, labels);
      if (version.known) {
        this.options.cache.set(use.image, { version: version.version.text, digest }, this.now());
        return { version: version.version.text, method: 'registry', digest, durationMs: this.now() - began };
      }
      registryProblem = version.reason;
    } catch (error) {
      registryProblem = (error as Error).message;
    }
    this.options.logger.info(
      { namespace: use.namespace, source: use.source, image: use.image, why: registryProblem },
      'registry did not tell the version; starting a probe pod',
    );
    let version: string;
    try {
      version = await this.probe(use, template);
    } catch (error) {
      throw new Error(`registry: ${registryProblem}; probe pod: ${(error as Error).message}`);
    }
    this.options.cache.set(use.image, { version }, this.now());
    return { version, method: 'probe-pod', durationMs: this.now() - began };
  }

  /** The .dockerconfigjson of the pod's imagePullSecrets, then of its ServiceAccount's (the kubelet's order). */
  private async pullCredentials(namespace: string, template: Record<string, unknown>): Promise<DockerConfig[]> {
    const names = secretNames(valueAt(template, ['spec', 'imagePullSecrets']));
    const accountName = valueAt(template, ['spec', 'serviceAccountName']);
    const account = await this.options.cluster.find(
      'ServiceAccount',
      namespace,
      typeof accountName === 'string' && accountName !== '' ? accountName : 'default',
    );
    for (const name of secretNames(valueAt(account, ['imagePullSecrets']))) if (!names.includes(name)) names.push(name);
    const configs: DockerConfig[] = [];
    for (const name of names) {
      const secret = await this.options.cluster.find('Secret', namespace, name);
      const config = dockerConfigOf(secret);
      if (config) configs.push(config);
    }
    return configs;
  }

  /** Runs `airflow version` in a pod made from the held template; the pod is deleted whatever happens. */
  private async probe(use: ImageUse, template: Record<string, unknown>): Promise<string> {
    const container = mainContainerOf(template, use.image);
    if (!container) throw new Error(`no container of the pod template runs ${use.image}`);
    const hash = createHash('sha256').update(`${use.namespace}/${use.source}/${use.image}`).digest('hex');
    const name = `airflow-downgrade-guard-probe-${hash.slice(0, 10)}`;
    const { cluster } = this.options;
    // A leftover of a crashed attempt may run another template: start afresh.
    if (await cluster.find('Pod', use.namespace, name)) await cluster.delete('Pod', use.namespace, name, 0);
    await cluster.create('Pod', use.namespace, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: use.namespace,
        labels: { [PROBE_LABEL]: use.release.slice(0, 63), [MANAGED_BY_LABEL]: MANAGED_BY },
      },
      spec: probePodSpec(template, container),
    });
    try {
      const deadline = this.now() + this.options.probeTimeoutMs;
      await this.waitRunning(use.namespace, name, deadline);
      const outcome = await this.options.exec({
        namespace: use.namespace,
        pod: name,
        container,
        argv: PROBE_ARGV,
        timeoutMs: Math.max(1000, deadline - this.now()),
      });
      if (outcome.exitCode !== 0)
        throw new Error(
          `"${PROBE_ARGV.join(' ')}" ${outcome.exitCode === undefined ? `ended without a status (${outcome.error ?? 'no answer'})` : `exited ${outcome.exitCode}`}`,
        );
      const version = versionInOutput(outcome.stdout);
      if (!version) throw new Error(`"${PROBE_ARGV.join(' ')}" printed no Airflow version`);
      return version;
    } finally {
      await cluster.delete('Pod', use.namespace, name, 0).catch((error: unknown) => {
        this.options.logger.warn({ pod: name, err: (error as Error).message }, 'probe pod not deleted');
      });
    }
  }

  private async waitRunning(namespace: string, name: string, deadline: number): Promise<void> {
    for (;;) {
      const pod = await this.options.cluster.find('Pod', namespace, name);
      const phase = valueAt(pod, ['status', 'phase']);
      if (phase === 'Running') return;
      if (phase === 'Failed' || phase === 'Succeeded') throw new Error(`probe pod ${name} ended (${phase})`);
      if (this.now() >= deadline) throw new Error(`probe pod ${name} did not start in time (${String(phase)})`);
      await new Promise((resolve) => setTimeout(resolve, PROBE_POLL_MS));
    }
  }
}

/** A workload's pod template (a pod is its own). */
export function podTemplateOf(kind: WorkloadKind | 'Pod', object: unknown): Record<string, unknown> | undefined {
  if (kind === 'Pod') return isJsonObject(object) ? object : undefined;
  const path = kind === 'CronJob' ? ['spec', 'jobTemplate', 'spec', 'template'] : ['spec', 'template'];
  const template = valueAt(object, path);
  return isJsonObject(template) ? template : undefined;
}

function secretNames(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry) => (isJsonObject(entry) && typeof entry.name === 'string' ? [entry.name] : []));
}

/** A pull Secret's registry credentials: .dockerconfigjson ({auths}) or the legacy .dockercfg (the auths map). */
export function dockerConfigOf(secret: unknown): DockerConfig | undefined {
  for (const [key, wrapped] of [
    ['.dockerconfigjson', true],
    ['.dockercfg', false],
  ] as const) {
    const data = valueAt(secret, ['data', key]);
    if (typeof data !== 'string') continue;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
      if (!isJsonObject(parsed)) continue;
      return (wrapped ? parsed : { auths: parsed }) as DockerConfig;
    } catch {
      continue;
    }
  }
  return undefined;
}

function mainContainerOf(template: Record<string, unknown>, image: string): string | undefined {
  const containers = valueAt(template, ['spec', 'containers']);
  if (!Array.isArray(containers)) return undefined;
  const match = containers.find((c) => isJsonObject(c) && c.image === image && typeof c.name === 'string');
  return isJsonObject(match) ? (match.name as string) : undefined;
}

/** The held template's pod spec with only the container of the image, idling until the exec (bounded). */
function probePodSpec(template: Record<string, unknown>, container: string): Record<string, unknown> {
  const spec = structuredClone(valueAt(template, ['spec']) as Record<string, unknown>);
  const containers = (spec.containers as Array<Record<string, unknown>>).filter((c) => c.name === container);
  for (const c of containers) {
    c.command = ['sleep', String(PROBE_LIFETIME_SECONDS)];
    delete c.args;
    delete c.readinessProbe;
    delete c.livenessProbe;
    delete c.startupProbe;
    delete c.ports;
  }
  spec.containers = containers;
  delete spec.initContainers;
  delete spec.nodeName;
  spec.restartPolicy = 'Never';
  spec.activeDeadlineSeconds = PROBE_LIFETIME_SECONDS;
  return spec;
}

/** `airflow version` prints the version alone on its last line (after any warnings). */
export function versionInOutput(stdout: string): string | undefined {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    const version = parseAirflowVersion(lines[i] as string);
    if (version) return version.text;
  }
  return undefined;
}
