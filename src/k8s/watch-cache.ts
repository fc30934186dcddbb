// List + watch one resource into a map of slim records (only what the guard needs, so watching
// hundreds of releases stays cheap). Resumes from the last resourceVersion; a 410 Gone or any
// error relists after a backoff. The admission path only ever reads the map.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KubeApiError, type KubeRest } from './rest.js';

interface WatchedObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface WatchCacheOptions<T> {
  name: string;
  /** List path, e.g. /apis/apps/v1/deployments or /apis/apps/v1/namespaces/x/deployments. */
  paths: string[];
  labelSelector?: string;
  /** e.g. spec.nodeName=<node>: a node may list and watch only its own pods (Node authorizer). */
  fieldSelector?: string;
  /** The slim record kept for an object, or undefined to ignore it. */
  project: (obj: unknown) => T | undefined;
  onChange?: (key: string, record: T | undefined, previous: T | undefined) => void;
  /**
   * A secondary index (e.g. by namespace/release) read with group(): lets a lookup touch only the
   * records of one group instead of scanning the whole cache.
   */
  groupBy?: (record: T) => string;
  logger?: Logger;
  /** Relist backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class WatchCache<T> {
  private readonly records = new Map<string, T>();
  private readonly groups = new Map<string, Group<T>>();
  private readonly synced = new Set<string>();
  private stopped = false;
  private readonly aborts = new Set<AbortController>();
  private readonly timers = new Set<NodeJS.Timeout>();
  relists = 0;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly rest: KubeRest,
    private readonly options: WatchCacheOptions<T>,
  ) {}

  start(): void {
    for (const path of this.options.paths) void this.run(path, 0);
  }

  /** True once every path has completed its first list. */
  get ready(): boolean {
    return this.synced.size === this.options.paths.length;
  }

  get size(): number {
    return this.records.size;
  }

  get(namespace: string, name: string): T | undefined {
    return this.records.get(`${namespace}/${name}`);
  }

  values(): IterableIterator<T> {
    return this.records.values();
  }

  /** The records whose groupBy key is `group` (none without a groupBy option). */
  group(group: string): Iterable<T> {
    return this.groups.get(group)?.members.values() ?? NO_RECORDS;
  }

  /**
   * Changes whenever a record of the group is added, replaced or dropped (0 when it has none):
   * lets a reader keep something computed from group() until the group changes.
   */
  groupRevision(group: string): number {
    return this.groups.get(group)?.revision ?? 0;
  }

  stop(): void {
    this.stopped = true;
    for (const a of this.aborts) a.abort();
    for (const t of this.timers) clearTimeout(t);
  }

  private async run(path: string, failures: number): Promise<void> {
    if (this.stopped) return;
    try {
      const resourceVersion = await this.relist(path);
      this.synced.add(path);
      outageOf(this.rest).answered(this.options.logger);
      await this.watchFrom(path, resourceVersion);
      this.retryLater(path, 0);
    } catch (error) {
      this.reportFailure(path, error, failures);
      this.retryLater(path, failures + 1);
    }
  }

  /**
   * An unreachable API server is said once for all caches (with why), then retried quietly; a
   * watch that expired (410 Gone) is routine; any other error is said once per path until it lists again.
   */
  private reportFailure(path: string, error: unknown, failures: number): void {
    const logger = this.options.logger;
    const message = (error as Error).message;
    if (isUnreachable(error)) {
      outageOf(this.rest).unreachable(logger, message, this.options.maxBackoffMs ?? 5_000);
      return;
    }
    if (isExpired(error) || failures > 0) {
      logger?.debug({ cache: this.options.name, path, err: message }, 'watch ended; relisting');
      return;
    }
    logger?.warn({ cache: this.options.name, path, err: message }, 'watch failed; relisting with backoff');
  }

  private retryLater(path: string, failures: number): void {
    if (this.stopped) return;
    const min = this.options.minBackoffMs ?? 200;
    const max = this.options.maxBackoffMs ?? 5_000;
    const delay = failures === 0 ? 0 : Math.min(max, min * 2 ** (failures - 1));
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.run(path, failures);
    }, delay);
    this.timers.add(timer);
  }

  private async relist(path: string): Promise<string> {
    this.relists++;
    const list = await this.rest.request<{ metadata?: { resourceVersion?: string }; items?: unknown[] }>('GET', path, {
      query: { labelSelector: this.options.labelSelector, fieldSelector: this.options.fieldSelector },
      timeoutMs: 30_000,
    });
    const seen = new Set<string>();
    for (const item of list.items ?? []) {
      const key = keyOf(item as WatchedObject);
      if (!key) continue;
      seen.add(key);
      this.put(key, item);
    }
    // Objects deleted while we were not watching.
    const prefix = namespacePrefix(path);
    for (const key of [...this.records.keys()]) {
      if (!seen.has(key) && (prefix === undefined || key.startsWith(prefix))) this.drop(key);
    }
    return list.metadata?.resourceVersion ?? '';
  }

  /** Watches until the stream ends; resolves normally on a clean end, rejects on errors and 410. */
  private watchFrom(path: string, resourceVersion: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let lastRv = resourceVersion;
      const watch = new Watch(this.kubeConfig);
      watch
        .watch(
          path,
          {
            resourceVersion: lastRv,
            allowWatchBookmarks: true,
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
            timeoutSeconds: 300,
          },
          (type: string, obj: unknown) => {
            const meta = (obj as WatchedObject).metadata;
            if (type === 'ERROR') {
              reject(new Error(`watch error: ${JSON.stringify(obj).slice(0, 200)}`));
              return;
            }
            if (meta?.resourceVersion) lastRv = meta.resourceVersion;
            if (type === 'BOOKMARK') return;
            const key = keyOf(obj as WatchedObject);
            if (!key) return;
            if (type === 'DELETED') this.drop(key);
            else this.put(key, obj);
          },
          (err: unknown) => {
            if (err) reject(err instanceof Error ? err : new Error(String(err)));
            else resolve();
          },
        )
        .then((controller) => {
          this.aborts.add(controller);
          if (this.stopped) controller.abort();
        })
        .catch(reject);
    });
  }

  private put(key: string, obj: unknown): void {
    const record = this.options.project(obj);
    const previous = this.records.get(key);
    if (record === undefined) {
      if (previous !== undefined) this.drop(key);
      return;
    }
    this.records.set(key, record);
    this.index(key, record, previous);
    this.options.onChange?.(key, record, previous);
  }

  private drop(key: string): void {
    const previous = this.records.get(key);
    if (previous === undefined) return;
    this.records.delete(key);
    this.unindex(key, previous);
    this.options.onChange?.(key, undefined, previous);
  }

  private index(key: string, record: T, previous: T | undefined): void {
    const groupBy = this.options.groupBy;
    if (!groupBy) return;
    const group = groupBy(record);
    // A record may move between groups (e.g. its release label was edited).
    if (previous !== undefined && groupBy(previous) !== group) this.unindex(key, previous);
    let entry = this.groups.get(group);
    if (!entry) this.groups.set(group, (entry = { members: new Map(), revision: 0 }));
    entry.members.set(key, record);
    entry.revision = nextRevision();
  }

  private unindex(key: string, record: T): void {
    const groupBy = this.options.groupBy;
    if (!groupBy) return;
    const group = groupBy(record);
    const entry = this.groups.get(group);
    if (!entry) return;
    entry.members.delete(key);
    entry.revision = nextRevision();
    // Empty groups go, so a cluster churning through namespaces does not grow the index.
    if (entry.members.size === 0) this.groups.delete(group);
  }
}

interface Group<T> {
  members: Map<string, T>;
  revision: number;
}

const NO_RECORDS: Iterable<never> = Object.freeze([]);

// One counter for every cache: a group that is emptied and refilled never repeats a revision.
let revisions = 0;
function nextRevision(): number {
  return ++revisions;
}

function keyOf(obj: WatchedObject): string | undefined {
  const name = obj.metadata?.name;
  if (!name) return undefined;
  return `${obj.metadata?.namespace ?? ''}/${name}`;
}

function namespacePrefix(path: string): string | undefined {
  const m = /\/namespaces\/([^/]+)\//.exec(path);
  return m ? `${decodeURIComponent(m[1] as string)}/` : undefined;
}

/** Connection errors: the API server is not there (as opposed to answering with an error). */
function isUnreachable(error: unknown): boolean {
  if (error instanceof KubeApiError) return error.code === 0;
  const text = `${(error as Error)?.message ?? ''} ${String((error as { cause?: unknown })?.cause ?? '')}`;
  return /ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|socket hang up|fetch failed/i.test(
    text,
  );
}

function isExpired(error: unknown): boolean {
  if (error instanceof KubeApiError) return error.code === 410;
  return /"code":410|\b410\b.*Gone|too old resource version/i.test((error as Error)?.message ?? '');
}

/** Whether the API server (one KubeRest) is known to be unreachable, shared by every cache on it. */
class Outage {
  private down = false;

  unreachable(logger: Logger | undefined, why: string, maxBackoffMs: number): void {
    if (this.down) return;
    this.down = true;
    logger?.warn(
      { server: this.server, err: why },
      `cannot reach the Kubernetes API at ${this.server} (${why}); retrying quietly with backoff (at most ${maxBackoffMs} ms apart) until it answers`,
    );
  }

  answered(logger: Logger | undefined): void {
    if (!this.down) return;
    this.down = false;
    logger?.info({ server: this.server }, `the Kubernetes API at ${this.server} answers again`);
  }

  constructor(private readonly server: string) {}
}

const outages = new WeakMap<KubeRest, Outage>();

function outageOf(rest: KubeRest): Outage {
  let outage = outages.get(rest);
  if (!outage) outages.set(rest, (outage = new Outage(rest.serverUrl)));
  return outage;
}
