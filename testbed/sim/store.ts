// The simulated cluster's object store: what etcd + the API server's registry are to a real
// cluster. One global resourceVersion counter, deep copies in and out, and a bounded event
// history per resource so watches can resume from a resourceVersion (410 Gone when too old).
import { randomUUID } from 'node:crypto';
import { cloneJson } from './json-clone.js';
import type { KubeObject, ResourceType, WatchEvent } from './types.js';

export type StoreErrorReason = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Gone' | 'Invalid';

const CODES: Record<StoreErrorReason, number> = {
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  Gone: 410,
  Invalid: 422,
};

export class StoreError extends Error {
  readonly code: number;
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
  ) {
    super(message);
    this.code = CODES[reason];
  }
}

interface HistoryEntry {
  rv: number;
  namespace: string | undefined;
  event: WatchEvent;
}

interface Watcher {
  namespace: string | undefined;
  onEvent: (event: WatchEvent) => void;
  readOnly: boolean;
}

export interface WatchOptions {
  /**
   * The watcher only reads events (serialises them, looks at them): it gets the stored event itself
   * instead of its own deep copy. It must never change it.
   */
  readOnly?: boolean;
}

interface Bucket {
  objects: Map<string, KubeObject>;
  history: HistoryEntry[];
  /** Events up to this resourceVersion are no longer in the history. */
  compactedRv: number;
  watchers: Set<Watcher>;
}

export function resourceKey(type: ResourceType): string {
  return `${type.group || 'core'}/${type.version}/${type.plural}`;
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** Fields whose change does not bump metadata.generation (as for real: metadata and status). */
function specOf(obj: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = obj;
  return JSON.stringify(rest);
}

export interface StoreOptions {
  /** Events kept per resource for watch resumption. */
  historyLimit?: number;
}

export class Store {
  private rv = 0;
  private readonly buckets = new Map<string, Bucket>();
  private readonly historyLimit: number;

  constructor(options: StoreOptions = {}) {
    this.historyLimit = options.historyLimit ?? 2000;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.bucket(type).objects.get(objectKey(this.ns(type, namespace), name));
    return found ? cloneJson(found) : undefined;
  }

  list(
    type: ResourceType,
    namespace?: string,
    filter?: (obj: KubeObject) => boolean,
  ): { items: KubeObject[]; resourceVersion: string } {
    const ns = this.ns(type, namespace);
    const items: KubeObject[] = [];
    for (const obj of this.bucket(type).objects.values()) {
      if (ns !== undefined && obj.metadata.namespace !== ns) continue;
      if (filter && !filter(obj)) continue;
      items.push(cloneJson(obj));
    }
    items.sort((a, b) =>
      objectKey(a.metadata.namespace, a.metadata.name).localeCompare(objectKey(b.metadata.namespace, b.metadata.name)),
    );
    return { items, resourceVersion: this.resourceVersion };
  }

  create(type: ResourceType, input: KubeObject): KubeObject {
    const obj = cloneJson(input);
    const meta = obj.metadata ?? (obj.metadata = { name: '' });
    if (!meta.name && meta.generateName) meta.name = meta.generateName + randomSuffix();
    if (!meta.name) throw new StoreError('Invalid', `${type.kind} "": name or generateName is required`);
    meta.namespace = this.ns(type, meta.namespace);
    const bucket = this.bucket(type);
    const key = objectKey(meta.namespace, meta.name);
    if (bucket.objects.has(key)) {
      throw new StoreError(
        'AlreadyExists',
        `${type.plural}${type.group ? '.' + type.group : ''} "${meta.name}" already exists`,
      );
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    meta.generation = 1;
    delete meta.deletionTimestamp;
    meta.resourceVersion = String(++this.rv);
    obj.apiVersion = type.group ? `${type.group}/${type.version}` : type.version;
    obj.kind = type.kind;
    bucket.objects.set(key, obj);
    this.emit(type, bucket, 'ADDED', obj);
    return cloneJson(obj);
  }

  /**
   * Replaces an object. When the input carries a resourceVersion it must be the current one
   * (optimistic concurrency, 409 Conflict otherwise), as for a real PUT.
   */
  update(type: ResourceType, input: KubeObject): KubeObject {
    const obj = cloneJson(input);
    const bucket = this.bucket(type);
    const ns = this.ns(type, obj.metadata?.namespace);
    const key = objectKey(ns, obj.metadata?.name ?? '');
    const current = bucket.objects.get(key);
    if (!current) throw notFound(type, obj.metadata?.name ?? '');
    const expected = obj.metadata.resourceVersion;
    if (expected && expected !== current.metadata.resourceVersion) {
      throw new StoreError(
        'Conflict',
        `Operation cannot be fulfilled on ${type.plural}${type.group ? '.' + type.group : ''} "${current.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    obj.apiVersion = current.apiVersion;
    obj.kind = current.kind;
    obj.metadata.namespace = ns;
    obj.metadata.uid = current.metadata.uid;
    obj.metadata.creationTimestamp = current.metadata.creationTimestamp;
    obj.metadata.generation = (current.metadata.generation ?? 1) + (specOf(obj) === specOf(current) ? 0 : 1);
    if (current.metadata.deletionTimestamp) {
      obj.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      obj.metadata.deletionGracePeriodSeconds = current.metadata.deletionGracePeriodSeconds;
    }
    if (
      JSON.stringify({ ...obj, metadata: { ...obj.metadata, resourceVersion: '' } }) ===
      JSON.stringify({ ...current, metadata: { ...current.metadata, resourceVersion: '' } })
    ) {
      return cloneJson(current); // a no-op write changes nothing, as on a real server
    }
    obj.metadata.resourceVersion = String(++this.rv);
    bucket.objects.set(key, obj);
    this.emit(type, bucket, 'MODIFIED', obj);
    return cloneJson(obj);
  }

  /**
   * Puts an object as another server holds it (a node agent's local copy of the pods bound to its
   * node): uid, creationTimestamp and deletion state are kept as given, the resourceVersion is this
   * store's own. Emits ADDED or MODIFIED like create/update.
   */
  mirror(type: ResourceType, input: KubeObject): KubeObject {
    const obj = cloneJson(input);
    const bucket = this.bucket(type);
    obj.metadata.namespace = this.ns(type, obj.metadata.namespace);
    const key = objectKey(obj.metadata.namespace, obj.metadata.name);
    const existed = bucket.objects.has(key);
    obj.metadata.resourceVersion = String(++this.rv);
    bucket.objects.set(key, obj);
    this.emit(type, bucket, existed ? 'MODIFIED' : 'ADDED', obj);
    return cloneJson(obj);
  }

  /** Removes an object at once (graceful deletion is the caller's business: set deletionTimestamp first). */
  remove(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const bucket = this.bucket(type);
    const key = objectKey(this.ns(type, namespace), name);
    const current = bucket.objects.get(key);
    if (!current) throw notFound(type, name);
    bucket.objects.delete(key);
    const gone = cloneJson(current);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit(type, bucket, 'DELETED', gone);
    return cloneJson(gone);
  }

  /**
   * Calls onEvent for every change of this resource (in one namespace, or all when undefined).
   * With sinceResourceVersion, first replays the changes after it; throws Gone when the history
   * no longer reaches back that far. Returns the function that stops the watch.
   */
  watch(
    type: ResourceType,
    namespace: string | undefined,
    sinceResourceVersion: string | undefined,
    onEvent: (event: WatchEvent) => void,
    options: WatchOptions = {},
  ): () => void {
    const bucket = this.bucket(type);
    const ns = this.ns(type, namespace);
    if (sinceResourceVersion !== undefined && sinceResourceVersion !== '' && sinceResourceVersion !== '0') {
      const since = Number(sinceResourceVersion);
      if (!Number.isInteger(since) || since < 0) {
        throw new StoreError('Invalid', `invalid resourceVersion "${sinceResourceVersion}"`);
      }
      if (since < bucket.compactedRv) {
        throw new StoreError('Gone', `too old resource version: ${since} (${bucket.compactedRv})`);
      }
      for (const entry of bucket.history) {
        if (entry.rv > since && (ns === undefined || entry.namespace === ns))
          onEvent(options.readOnly ? entry.event : cloneJson(entry.event));
      }
    }
    const watcher: Watcher = { namespace: ns, onEvent, readOnly: options.readOnly === true };
    bucket.watchers.add(watcher);
    return () => {
      bucket.watchers.delete(watcher);
    };
  }

  /** Drops the event history (tests use it to force 410 Gone on resumption). */
  compactHistory(): void {
    for (const bucket of this.buckets.values()) {
      bucket.history.length = 0;
      bucket.compactedRv = this.rv;
    }
  }

  private ns(type: ResourceType, namespace: string | undefined): string | undefined {
    return type.namespaced ? namespace : undefined;
  }

  private bucket(type: ResourceType): Bucket {
    const key = resourceKey(type);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { objects: new Map(), history: [], compactedRv: 0, watchers: new Set() };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  private emit(_type: ResourceType, bucket: Bucket, type: WatchEvent['type'], obj: KubeObject): void {
    const event: WatchEvent = { type, object: cloneJson(obj) };
    bucket.history.push({ rv: Number(obj.metadata.resourceVersion), namespace: obj.metadata.namespace, event });
    if (bucket.history.length > this.historyLimit) {
      const dropped = bucket.history.splice(0, bucket.history.length - this.historyLimit);
      bucket.compactedRv = dropped[dropped.length - 1]?.rv ?? bucket.compactedRv;
    }
    for (const watcher of [...bucket.watchers]) {
      if (watcher.namespace !== undefined && watcher.namespace !== obj.metadata.namespace) continue;
      try {
        watcher.onEvent(watcher.readOnly ? event : cloneJson(event));
      } catch {
        // A failing watcher must not break the write or the other watchers.
      }
    }
  }
}

function notFound(type: ResourceType, name: string): StoreError {
  return new StoreError('NotFound', `${type.plural}${type.group ? '.' + type.group : ''} "${name}" not found`);
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < 5; i++) out += alphabet[Math.floor(Math.random() * alphabet.length)];
  return out;
}
