// The cluster as the coordinator sees it: typed paths over the plain-JSON REST client, every
// call retried with backoff on conflicts, throttling, server errors and network trouble.
import { KubeApiError, KubeRest, isRetryable, withRetry, type RetryOptions } from './rest.js';
import type { JsonObject } from '../core/objects.js';

export type KindName =
  | 'Deployment'
  | 'StatefulSet'
  | 'Job'
  | 'CronJob'
  | 'ReplicaSet'
  | 'Pod'
  | 'Secret'
  | 'ServiceAccount'
  | 'ConfigMap'
  | 'Lease'
  | 'Event'
  | 'Namespace'
  | 'MutatingWebhookConfiguration';

interface KindPath {
  prefix: string;
  plural: string;
  namespaced: boolean;
}

const KINDS: Record<KindName, KindPath> = {
  Deployment: { prefix: '/apis/apps/v1', plural: 'deployments', namespaced: true },
  StatefulSet: { prefix: '/apis/apps/v1', plural: 'statefulsets', namespaced: true },
  ReplicaSet: { prefix: '/apis/apps/v1', plural: 'replicasets', namespaced: true },
  Job: { prefix: '/apis/batch/v1', plural: 'jobs', namespaced: true },
  CronJob: { prefix: '/apis/batch/v1', plural: 'cronjobs', namespaced: true },
  Pod: { prefix: '/api/v1', plural: 'pods', namespaced: true },
  Secret: { prefix: '/api/v1', plural: 'secrets', namespaced: true },
  ServiceAccount: { prefix: '/api/v1', plural: 'serviceaccounts', namespaced: true },
  ConfigMap: { prefix: '/api/v1', plural: 'configmaps', namespaced: true },
  Event: { prefix: '/api/v1', plural: 'events', namespaced: true },
  Namespace: { prefix: '/api/v1', plural: 'namespaces', namespaced: false },
  Lease: { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases', namespaced: true },
  MutatingWebhookConfiguration: {
    prefix: '/apis/admissionregistration.k8s.io/v1',
    plural: 'mutatingwebhookconfigurations',
    namespaced: false,
  },
};

export function resourcePath(kind: KindName, namespace?: string, name?: string, subresource?: string): string {
  const k = KINDS[kind];
  let path = k.prefix;
  if (k.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${k.plural}`;
  if (name) path += `/${encodeURIComponent(name)}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

/** The apiVersion of a kind (group/version, or version for the core group), from the same table as its paths. */
export function apiVersionOf(kind: KindName): string {
  const prefix = KINDS[kind].prefix;
  return prefix.startsWith('/apis/') ? prefix.slice('/apis/'.length) : prefix.slice('/api/'.length);
}

export interface KubeList<T = JsonObject> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export type { JsonPatchOp } from '../core/hold.js';
import type { JsonPatchOp } from '../core/hold.js';
import { valueAt } from '../core/objects.js';
import { disownPatch, FIELD_MANAGER } from '../core/managed-fields.js';

/** Every write names the guard's field manager (the API server would otherwise take it from the User-Agent). */
const WRITE_QUERY = { fieldManager: FIELD_MANAGER };

function namespaceOf(object: unknown): string | undefined {
  const namespace = valueAt(object, ['metadata', 'namespace']);
  return typeof namespace === 'string' ? namespace : undefined;
}

/** A JSON Patch `test` that the object is still at the resourceVersion it was read at. */
function resourceVersionTest(object: unknown): JsonPatchOp {
  return { op: 'test', path: '/metadata/resourceVersion', value: valueAt(object, ['metadata', 'resourceVersion']) };
}

/** The API server answered 409: AlreadyExists, or a stale resourceVersion. */
export function isConflict(error: unknown): boolean {
  return (error as { code?: number } | undefined)?.code === 409;
}

/** 422: the request was refused as invalid, e.g. a JSON Patch `test` that failed. */
export function isInvalid(error: unknown): boolean {
  return (error as { code?: number } | undefined)?.code === 422;
}

export function isNotFound(error: unknown): boolean {
  return (error as { code?: number } | undefined)?.code === 404;
}

export class Cluster {
  constructor(
    readonly rest: KubeRest,
    private readonly retry: RetryOptions = {},
  ) {}

  get<T = JsonObject>(kind: KindName, namespace: string | undefined, name: string): Promise<T> {
    return withRetry(() => this.rest.request<T>('GET', resourcePath(kind, namespace, name)), this.notFoundIsFinal());
  }

  /** The object, or undefined when it does not exist. */
  async find<T = JsonObject>(kind: KindName, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.get<T>(kind, namespace, name);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  list<T = JsonObject>(kind: KindName, namespace?: string, labelSelector?: string): Promise<KubeList<T>> {
    return withRetry(
      () => this.rest.request<KubeList<T>>('GET', resourcePath(kind, namespace), { query: { labelSelector } }),
      this.retry,
    );
  }

  create<T = JsonObject>(kind: KindName, namespace: string | undefined, body: JsonObject): Promise<T> {
    // Not retried on 409: AlreadyExists is an answer the caller handles.
    return withRetry(
      () => this.rest.request<T>('POST', resourcePath(kind, namespace), { body, query: WRITE_QUERY }),
      this.conflictIsFinal(),
    );
  }

  replace<T = JsonObject>(kind: KindName, namespace: string | undefined, name: string, body: JsonObject): Promise<T> {
    return withRetry(
      () => this.rest.request<T>('PUT', resourcePath(kind, namespace, name), { body, query: WRITE_QUERY }),
      this.conflictIsFinal(),
    );
  }

  /** RFC 6902 patch. Include a `test` of /metadata/resourceVersion for optimistic concurrency. */
  patch<T = JsonObject>(kind: KindName, namespace: string | undefined, name: string, ops: JsonPatchOp[]): Promise<T> {
    return withRetry(
      () =>
        this.rest.request<T>('PATCH', resourcePath(kind, namespace, name), {
          body: ops,
          contentType: 'application/json-patch+json',
          query: WRITE_QUERY,
        }),
      this.conflictIsFinal(),
    );
  }

  /**
   * Patches `object` as it was read: the patch is refused (409) when the object changed since, so
   * a decision made on what was read is never applied to something else. The spec fields the patch
   * changed are then given up by the guard's field manager (core/managed-fields.ts), so the deploy
   * tool's next server-side apply takes them back without a conflict. Answers the newest object.
   */
  async patchUnchanged<T = JsonObject>(kind: KindName, object: unknown, ops: JsonPatchOp[]): Promise<T> {
    const namespace = namespaceOf(object);
    const name = String(valueAt(object, ['metadata', 'name']));
    let patched: T;
    try {
      patched = await this.patch<T>(kind, namespace, name, [resourceVersionTest(object), ...ops]);
    } catch (error) {
      throw await this.conflictIfMoved(error, kind, object);
    }
    return this.disownSpec(kind, patched);
  }

  /**
   * A failed JSON Patch `test` is answered 422 like any invalid patch: when the object moved on since
   * `read` (or is gone), it is the 409 a stale write is (isConflict), else the error as it was.
   */
  private async conflictIfMoved(error: unknown, kind: KindName, read: unknown): Promise<unknown> {
    if (!isInvalid(error)) return error;
    const name = String(valueAt(read, ['metadata', 'name']));
    const was = valueAt(read, ['metadata', 'resourceVersion']);
    const now = await this.find(kind, namespaceOf(read), name);
    const is = valueAt(now, ['metadata', 'resourceVersion']);
    if (now !== undefined && is === was) return error;
    return new KubeApiError(
      409,
      'Conflict',
      `${kind} ${name} changed since it was read (resourceVersion ${String(was)} -> ${now === undefined ? 'deleted' : String(is)})`,
    );
  }

  /**
   * The guard's ownership of spec fields given up (core/managed-fields.ts). The patch tests the
   * entries it changes; when they moved meanwhile (another manager's entry came or went), read
   * again and tried again, a few times.
   */
  private async disownSpec<T>(kind: KindName, object: T): Promise<T> {
    let current: unknown = object;
    for (let attempt = 0; attempt < 5; attempt++) {
      const ops = disownPatch(valueAt(current, ['metadata', 'managedFields']));
      if (!ops) break;
      const namespace = namespaceOf(current);
      const name = String(valueAt(current, ['metadata', 'name']));
      try {
        return await this.patch<T>(kind, namespace, name, ops);
      } catch (error) {
        if (!isConflict(error) && !isInvalid(error)) throw error;
        const again = await this.find(kind, namespace, name);
        if (!again) break;
        current = again;
      }
    }
    return current as T;
  }

  /** Gone already counts as deleted; with `preconditions`, a changed object answers 409 (isConflict). */
  async delete(
    kind: KindName,
    namespace: string | undefined,
    name: string,
    gracePeriodSeconds?: number,
    preconditions?: { uid: string; resourceVersion: string },
  ): Promise<void> {
    try {
      await withRetry(
        () =>
          this.rest.request('DELETE', resourcePath(kind, namespace, name), {
            query: { gracePeriodSeconds, propagationPolicy: 'Background' },
            ...(preconditions ? { body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions } } : {}),
          }),
        preconditions ? this.conflictIsFinal() : this.notFoundIsFinal(),
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private notFoundIsFinal(): RetryOptions {
    return this.retry;
  }

  /** A 409 on create/replace/patch is an answer (exists, stale resourceVersion), not a passing fault. */
  private conflictIsFinal(): RetryOptions {
    return { ...this.retry, retryable: (e) => isRetryable(e) && !isConflict(e) };
  }
}
