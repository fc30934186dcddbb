// The metadata database a release's pods really use, found from its workloads
// (core/metadata-connection.ts says where; this reads it). Precedence: the per-release override
// annotation naming a Secret and key, the global URL, what the pod specs set, and last the
// official chart's default Secret `<release>-metadata` (key `connection`). The URL is a secret:
// only `describeConnectionSource` text is ever logged or put in an error.
import type { Logger } from 'pino';
import { annotationAt, valueAt, type WorkloadKind } from '../core/objects.js';
import {
  composeConnectionUrl,
  describeConnectionSource,
  envFromSecrets,
  METADATA_SECRET_ANNOTATION,
  resolveConnectionSource,
  type ConnectionSource,
  type Setting,
  type WorkloadSpec,
} from '../core/metadata-connection.js';
import type { ExecRunner } from '../k8s/exec.js';
import { queryPod } from './pod-query.js';
import { chooseExecPod, isOnVersion, type PodRecord, type WorkloadRecord } from './release-view.js';

/** How long a resolved URL is reused (then read again: a rotated password). */
export const METADATA_URL_TTL_MS = 30_000;

/** What the resolution needs of the cluster: reads only. */
export interface MetadataUrlDeps {
  find(kind: WorkloadKind | 'Secret', namespace: string, name: string): Promise<unknown>;
  exec: ExecRunner;
  logger: Logger;
}

export interface MetadataUrlOptions {
  /** The official chart's default: Secret `<release>-metadata`, key `connection`. */
  metadataSecretName: (release: string) => string;
  metadataSecretKey: string;
  /** Used for every release without the override annotation (e.g. a DB reached through another address). */
  databaseUrlOverride?: string;
}

/** The release as the coordinator knows it when it needs the URL: an operation, or before one exists, a version resolution. */
export interface ReleaseRef {
  namespace: string;
  release: string;
  /** The newer version: its workloads are read first and its pods answer run-time questions (unknown before an operation opens). */
  fromVersion?: string;
  fromRevision?: string;
}

interface Cached {
  url: string;
  at: number;
  /** Where it came from (logged when it changes). */
  description: string;
}

export class MetadataUrls {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly options: MetadataUrlOptions,
    private readonly deps: MetadataUrlDeps,
  ) {}

  /** The release's metadata URL, resolved at most every METADATA_URL_TTL_MS. */
  async url(ref: ReleaseRef, workloads: readonly WorkloadRecord[], pods: Iterable<PodRecord>): Promise<string> {
    const key = `${ref.namespace}/${ref.release}`;
    const cached = this.cache.get(key);
    if (cached && Date.now() - cached.at < METADATA_URL_TTL_MS) return cached.url;
    let resolved: { url: string; description: string };
    try {
      resolved = await this.resolve(ref, workloads, pods);
    } catch (error) {
      // Asked of a pod that is gone now (drained): the URL it gave stays valid until a DB error says otherwise.
      if (cached && error instanceof NoPodToAsk) return cached.url;
      throw error;
    }
    if (cached?.description !== resolved.description)
      this.deps.logger.info(
        { namespace: ref.namespace, release: ref.release, source: resolved.description },
        'metadata database connection found',
      );
    this.cache.set(key, { ...resolved, at: Date.now() });
    return resolved.url;
  }

  /** After a database error: the next call resolves again (a rotated password, a moved database). */
  forget(ref: Pick<ReleaseRef, 'namespace' | 'release'>): void {
    this.cache.delete(`${ref.namespace}/${ref.release}`);
  }

  private async resolve(
    ref: ReleaseRef,
    workloads: readonly WorkloadRecord[],
    pods: Iterable<PodRecord>,
  ): Promise<{ url: string; description: string }> {
    const specs = await this.workloadSpecs(ref, workloads);
    const overridden = specs.some((w) => annotationAt(w.object, METADATA_SECRET_ANNOTATION) !== undefined);
    if (!overridden && this.options.databaseUrlOverride)
      return { url: this.options.databaseUrlOverride, description: 'the global --metadata-database-url' };
    const keys = new Map<string, string[]>();
    for (const name of envFromSecrets(specs)) {
      const data = valueAt(await this.deps.find('Secret', ref.namespace, name), ['data']);
      keys.set(name, data && typeof data === 'object' ? Object.keys(data) : []);
    }
    const source = resolveConnectionSource(specs, (name) => keys.get(name));
    const description = describeConnectionSource(source);
    return { url: await this.read(ref, source, pods), description };
  }

  /** The release's workload objects, the newer version's first. */
  private async workloadSpecs(ref: ReleaseRef, workloads: readonly WorkloadRecord[]): Promise<WorkloadSpec[]> {
    const ordered = [...workloads].sort(
      (a, b) =>
        Number(isOnVersion(b, ref.fromRevision ?? '', ref.fromVersion)) -
          Number(isOnVersion(a, ref.fromRevision ?? '', ref.fromVersion)) || a.name.localeCompare(b.name),
    );
    const specs: WorkloadSpec[] = [];
    for (const w of ordered) {
      const object = await this.deps.find(w.kind, w.namespace, w.name);
      if (object) specs.push({ kind: w.kind, object });
    }
    return specs;
  }

  private async read(ref: ReleaseRef, source: ConnectionSource, pods: Iterable<PodRecord>): Promise<string> {
    switch (source.kind) {
      case 'secret':
        return this.secretValue(ref.namespace, source.secret, source.key);
      case 'literal':
        return source.url;
      case 'composed': {
        const values = new Map<Setting, string>();
        for (const setting of Object.values(source.parts) as Array<Setting | string>) {
          if (typeof setting === 'string') continue;
          values.set(setting, await this.settingValue(ref.namespace, setting));
        }
        return composeConnectionUrl(source.parts, (setting) => values.get(setting) as string);
      }
      case 'ask-pod': {
        const pod = chooseExecPod(pods, ref.release, ref.namespace, ref.fromRevision ?? '', ref.fromVersion);
        if (!pod) throw new NoPodToAsk(ref, describeConnectionSource(source));
        const answer = (await queryPod(this.deps.exec, pod, source.argv)).trim();
        if (answer === '') throw new Error(`pod ${pod.name} answered an empty connection (${source.via})`);
        return answer;
      }
      case 'undetermined': {
        // The official chart's default Secret, also when its pods load it some way we do not read.
        const name = this.options.metadataSecretName(ref.release);
        const secret = await this.deps.find('Secret', ref.namespace, name);
        if (!secret)
          throw new Error(
            `metadata connection of release ${ref.namespace}/${ref.release} not found: ${source.reason}; and no Secret ${name}`,
          );
        return this.secretValue(ref.namespace, name, this.options.metadataSecretKey, secret);
      }
    }
  }

  private settingValue(namespace: string, setting: Setting): Promise<string> {
    return 'value' in setting
      ? Promise.resolve(setting.value)
      : this.secretValue(namespace, setting.secret, setting.key);
  }

  private async secretValue(namespace: string, name: string, key: string, found?: unknown): Promise<string> {
    const secret = found ?? (await this.deps.find('Secret', namespace, name));
    if (!secret) throw new Error(`metadata Secret ${namespace}/${name} not found`);
    const value = valueAt(secret, ['data', key]);
    if (typeof value !== 'string') throw new Error(`metadata Secret ${namespace}/${name} has no key '${key}'`);
    return Buffer.from(value, 'base64').toString('utf8');
  }
}

/** The connection is built at run time and no pod of the newer version runs to ask. */
class NoPodToAsk extends Error {
  constructor(ref: ReleaseRef, source: string) {
    super(`no Running and Ready pod of ${ref.fromVersion} to ask for the metadata connection (${source})`);
  }
}
