// The cluster as the coordinator sees it: typed paths over the plain-JSON REST client, every
// call retried with backoff on conflicts, throttling, server errors and network trouble.
import { KubeRest, isRetryable, withRetry, type RetryOptions } from './rest.js';
import type { JsonObject } from '../core/objects.js';

export type KindName = 'Deployment' | 'StatefulSet' | 'Job' | 'CronJob' | 'ReplicaSet' | 'Pod' | 'Secret' | 'ConfigMap' | 'Lease' | 'Event' | 'Namespace' | 'MutatingWebhookConfiguration';

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

export interface KubeList<T = JsonObject> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'test' | 'move' | 'copy';
  path: string;
  value?: unknown;
  from?: string;
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
      if ((error as { code?: number }).code === 404) return undefined;
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
    return withRetry(() => this.rest.request<T>('POST', resourcePath(kind, namespace), { body }), this.conflictIsFinal());
  }

  replace<T = JsonObject>(kind: KindName, namespace: string | undefined, name: string, body: JsonObject): Promise<T> {
    return withRetry(
      () => this.rest.request<T>('PUT', resourcePath(kind, namespace, name), { body }),
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
        }),
      this.conflictIsFinal(),
    );
  }

  async delete(kind: KindName, namespace: string | undefined, name: string, gracePeriodSeconds?: number): Promise<void> {
    try {
      await withRetry(
        () =>
          this.rest.request('DELETE', resourcePath(kind, namespace, name), {
            query: { gracePeriodSeconds, propagationPolicy: 'Background' },
          }),
        this.notFoundIsFinal(),
      );
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
    }
  }

  private notFoundIsFinal(): RetryOptions {
    return this.retry;
  }

  /** A 409 on create/replace/patch is an answer (exists, stale resourceVersion), not a passing fault. */
  private conflictIsFinal(): RetryOptions {
    return { ...this.retry, retryable: (e) => isRetryable(e) && (e as { code?: number }).code !== 409 };
  }
}
