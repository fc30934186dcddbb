// The REST semantics of the API server over the Store: create/update/patch/delete with defaulting,
// validation, admission, dryRun, graceful deletion, finalizers and owner-based cascading. HTTP
// concerns (routing, auth, encoding, watch streaming) live in server.ts.
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { Store, StoreError } from '../store.js';
import { RESOURCES, groupVersion } from '../resources.js';
import type { KubeObject, ResourceType } from '../types.js';
import { admit, type AdmissionOperation, type UserInfo, type WebhookServiceResolver } from './admission.js';
import { allocateOnCreate, initialStatus, keepOnUpdate } from './allocation.js';
import { applyDefaults, validateObject } from './defaults.js';
import { applyPatch, PatchError, type PatchType } from './patch.js';
import {
  ApiError,
  apiError,
  alreadyExists,
  badRequest,
  conflict,
  notFound,
  statusBody,
  type StatusBody,
} from './status.js';

export interface RequestContext {
  user: UserInfo;
  dryRun: boolean;
  fieldManager?: string;
}

export interface Result<T = unknown> {
  code: number;
  body: T;
  warnings: string[];
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
}

const FOREGROUND = 'foregroundDeletion';
const ORPHAN = 'orphan';

function nowIso(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < 5; i++) out += alphabet[Math.floor(Math.random() * alphabet.length)];
  return out;
}

export function translateStoreError(err: unknown, type: ResourceType, name: string): unknown {
  if (!(err instanceof StoreError)) return err;
  switch (err.reason) {
    case 'NotFound':
      return notFound(type, name);
    case 'AlreadyExists':
      return alreadyExists(type, name);
    case 'Conflict':
      return conflict(
        type,
        name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    case 'Gone':
      return apiError(410, 'Expired', err.message);
    case 'Invalid':
      return apiError(422, 'Invalid', err.message);
  }
}

function hasStatusSubresource(type: ResourceType): boolean {
  return (type.subresources ?? []).includes('status');
}

export class Registry {
  constructor(
    readonly store: Store,
    private readonly webhookServiceResolver: WebhookServiceResolver | undefined,
  ) {}

  getObject(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const found = this.store.get(type, namespace, name);
    if (!found) throw notFound(type, name);
    return found;
  }

  requireNamespace(type: ResourceType, namespace: string | undefined): void {
    if (!type.namespaced) return;
    if (!namespace) throw badRequest('the server could not find the requested resource');
    if (!this.store.get(RESOURCES.namespaces, undefined, namespace)) throw notFound(RESOURCES.namespaces, namespace);
  }

  decodeBody(type: ResourceType, body: unknown, namespace: string | undefined): KubeObject {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body).slice(0, 100)}'`);
    }
    const o = structuredClone(body) as KubeObject;
    const expected = groupVersion(type);
    if (o.apiVersion !== undefined && o.apiVersion !== expected) {
      throw badRequest(
        `the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${expected})`,
      );
    }
    if (o.kind !== undefined && o.kind !== type.kind) {
      throw badRequest(`the kind in the data (${String(o.kind)}) does not match the expected kind (${type.kind})`);
    }
    o.apiVersion = expected;
    o.kind = type.kind;
    o.metadata = (typeof o.metadata === 'object' && o.metadata !== null ? o.metadata : {}) as KubeObject['metadata'];
    if (type.namespaced) {
      if (o.metadata.namespace && namespace && o.metadata.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      if (namespace) o.metadata.namespace = namespace;
    } else {
      delete o.metadata.namespace;
    }
    return o;
  }

  private async runAdmission(
    ctx: RequestContext,
    operation: AdmissionOperation,
    type: ResourceType,
    object: KubeObject | null,
    oldObject: KubeObject | null,
    options: Record<string, unknown>,
    extra: { subresource?: string; kind?: { group: string; version: string; kind: string } } = {},
  ): Promise<{ object: KubeObject | null; warnings: string[] }> {
    const meta = (object ?? oldObject)?.metadata;
    const attrs = {
      operation,
      type,
      namespace: meta?.namespace,
      name: meta?.name ?? '',
      object,
      oldObject,
      dryRun: ctx.dryRun,
      options: { kind: options.kind, apiVersion: 'meta.k8s.io/v1', ...options },
      user: ctx.user,
      ...extra,
    };
    const outcome = await admit(this.store, attrs, this.webhookServiceResolver);
    if (outcome.object && object) {
      // A webhook may not change what the request is about.
      const o = outcome.object;
      if (
        o.metadata?.name !== object.metadata.name ||
        (o.metadata?.namespace ?? undefined) !== (object.metadata.namespace ?? undefined)
      ) {
        throw badRequest('mutating admission webhooks may not change the object name or namespace');
      }
    }
    return outcome;
  }

  private createOptions(ctx: RequestContext): Record<string, unknown> {
    const options: Record<string, unknown> = { kind: 'CreateOptions' };
    if (ctx.dryRun) options.dryRun = ['All'];
    if (ctx.fieldManager) options.fieldManager = ctx.fieldManager;
    return options;
  }

  private updateOptions(ctx: RequestContext, kind: 'UpdateOptions' | 'PatchOptions'): Record<string, unknown> {
    const options: Record<string, unknown> = { kind };
    if (ctx.dryRun) options.dryRun = ['All'];
    if (ctx.fieldManager) options.fieldManager = ctx.fieldManager;
    return options;
  }

  async create(
    ctx: RequestContext,
    type: ResourceType,
    namespace: string | undefined,
    body: unknown,
    optionsKind = 'CreateOptions',
  ): Promise<Result<KubeObject>> {
    const o = this.decodeBody(type, body, namespace);
    this.requireNamespace(type, o.metadata.namespace);
    if (!o.metadata.name && o.metadata.generateName) o.metadata.name = o.metadata.generateName + randomSuffix();
    if (!o.metadata.name) {
      throw apiError(
        422,
        'Invalid',
        `${type.kind}${type.group ? '.' + type.group : ''} "" is invalid: metadata.name: Required value: name or generateName is required`,
      );
    }
    for (const key of [
      'uid',
      'resourceVersion',
      'creationTimestamp',
      'deletionTimestamp',
      'deletionGracePeriodSeconds',
      'generation',
      'selfLink',
    ]) {
      delete o.metadata[key];
    }
    if (this.store.get(type, o.metadata.namespace, o.metadata.name)) throw alreadyExists(type, o.metadata.name);
    applyDefaults(o);
    const options = optionsKind === 'PatchOptions' ? this.updateOptions(ctx, 'PatchOptions') : this.createOptions(ctx);
    const admitted = await this.runAdmission(ctx, 'CREATE', type, o, null, options);
    const final = admitted.object ?? o;
    applyDefaults(final);
    validateObject(type, final);
    allocateOnCreate(this.store, type, final);
    const status = initialStatus(type, final);
    if (status) final.status = status;
    if (ctx.dryRun) {
      if (this.store.get(type, final.metadata.namespace, final.metadata.name))
        throw alreadyExists(type, final.metadata.name);
      final.metadata.uid = randomUUID();
      final.metadata.creationTimestamp = nowIso();
      final.metadata.generation = 1;
      return { code: 201, body: final, warnings: admitted.warnings };
    }
    let created: KubeObject;
    try {
      created = this.store.create(type, final);
    } catch (err) {
      throw translateStoreError(err, type, final.metadata.name);
    }
    this.afterCreate(type, created);
    return { code: 201, body: created, warnings: admitted.warnings };
  }

  /** Side effects of real controllers that every client expects (the default ServiceAccount). */
  private afterCreate(type: ResourceType, created: KubeObject): void {
    if (type === RESOURCES.namespaces && !this.store.get(RESOURCES.serviceaccounts, created.metadata.name, 'default')) {
      this.store.create(RESOURCES.serviceaccounts, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: created.metadata.name },
      });
    }
  }

  /** Builds the object to store from the desired one: status/spec separation and immutable metadata. */
  private mergeForUpdate(
    type: ResourceType,
    current: KubeObject,
    desired: KubeObject,
    subresource: string | undefined,
  ): KubeObject {
    let next: KubeObject;
    if (subresource === 'status') {
      next = structuredClone(current);
      next.status = desired.status;
      // Labels and annotations may change through status, as for real; the rest of metadata not.
      next.metadata.resourceVersion = desired.metadata.resourceVersion;
    } else {
      next = structuredClone(desired);
      if (hasStatusSubresource(type)) {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
    }
    next.metadata.uid = current.metadata.uid;
    next.metadata.creationTimestamp = current.metadata.creationTimestamp;
    next.metadata.generation = current.metadata.generation;
    if (current.metadata.deletionTimestamp) {
      next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      next.metadata.deletionGracePeriodSeconds = current.metadata.deletionGracePeriodSeconds;
    } else {
      delete next.metadata.deletionTimestamp;
      delete next.metadata.deletionGracePeriodSeconds;
    }
    if (type === RESOURCES.namespaces) {
      (next.metadata.labels ??= {})['kubernetes.io/metadata.name'] = next.metadata.name;
    }
    return next;
  }

  /** Shared by PUT and PATCH: `produce` turns the current object into the desired one. */
  private async updateWith(
    ctx: RequestContext,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string | undefined,
    optionsKind: 'UpdateOptions' | 'PatchOptions',
    produce: (current: KubeObject) => KubeObject,
    retryOnConflict: boolean,
  ): Promise<Result<KubeObject>> {
    for (let attempt = 0; ; attempt++) {
      const current = this.getObject(type, namespace, name);
      const desired = produce(structuredClone(current));
      if (desired.metadata.name !== name) {
        throw badRequest(
          `the name of the object (${desired.metadata.name}) does not match the name on the URL (${name})`,
        );
      }
      const preconditionRv = desired.metadata.resourceVersion;
      if (preconditionRv && preconditionRv !== current.metadata.resourceVersion) {
        throw conflict(
          type,
          name,
          'the object has been modified; please apply your changes to the latest version and try again',
        );
      }
      if (desired.metadata.uid && desired.metadata.uid !== current.metadata.uid) {
        throw conflict(
          type,
          name,
          `Precondition failed: UID in precondition: ${desired.metadata.uid}, UID in object meta: ${current.metadata.uid}`,
        );
      }
      const next = this.mergeForUpdate(type, current, desired, subresource);
      keepOnUpdate(type, current, next);
      next.metadata.resourceVersion = current.metadata.resourceVersion;
      applyDefaults(next);
      const admitted = await this.runAdmission(
        ctx,
        'UPDATE',
        type,
        next,
        current,
        this.updateOptions(ctx, optionsKind),
        subresource ? { subresource } : {},
      );
      const final = admitted.object ?? next;
      applyDefaults(final);
      validateObject(type, final);
      if (ctx.dryRun) return { code: 200, body: final, warnings: admitted.warnings };
      try {
        const stored = this.store.update(type, final);
        this.finishDeletionIfDone(type, stored);
        return { code: 200, body: stored, warnings: admitted.warnings };
      } catch (err) {
        const isConflict = err instanceof StoreError && err.reason === 'Conflict';
        if (isConflict && retryOnConflict && attempt < 5) continue;
        throw translateStoreError(err, type, name);
      }
    }
  }

  async update(
    ctx: RequestContext,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string | undefined,
    body: unknown,
  ): Promise<Result<KubeObject>> {
    const desired = this.decodeBody(type, body, namespace);
    if (!this.store.get(type, namespace, name)) throw notFound(type, name);
    if (!desired.metadata.resourceVersion && subresource === undefined && !this.allowsUnconditionalUpdate(type)) {
      throw invalidRv(type, name);
    }
    return this.updateWith(ctx, type, namespace, name, subresource, 'UpdateOptions', () => desired, false);
  }

  private allowsUnconditionalUpdate(_type: ResourceType): boolean {
    return true; // all built-in types used here allow PUT without resourceVersion
  }

  async patch(
    ctx: RequestContext,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string | undefined,
    patchType: PatchType,
    rawBody: string,
  ): Promise<Result<KubeObject>> {
    let patch: unknown;
    try {
      patch = patchType === 'apply' ? parseYaml(rawBody) : JSON.parse(rawBody);
    } catch (err) {
      throw badRequest(`error decoding patch: ${(err as Error).message}`);
    }
    if (patchType === 'apply') {
      if (!ctx.fieldManager)
        throw badRequest(
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        );
      if (!this.store.get(type, namespace, name)) {
        const o = this.decodeBody(type, patch, namespace);
        if (o.metadata.name && o.metadata.name !== name)
          throw badRequest(`the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`);
        o.metadata.name = name;
        return this.create(ctx, type, namespace, o, 'PatchOptions');
      }
    }
    const explicitRv =
      typeof patch === 'object' &&
      patch !== null &&
      !Array.isArray(patch) &&
      typeof (patch as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion === 'string';
    return this.updateWith(
      ctx,
      type,
      namespace,
      name,
      subresource,
      'PatchOptions',
      (current) => {
        let patched: unknown;
        try {
          patched = applyPatch(patchType, current, patch);
        } catch (err) {
          if (err instanceof PatchError) throw apiError(422, 'Invalid', err.message);
          throw err;
        }
        if (typeof patched !== 'object' || patched === null || Array.isArray(patched)) {
          throw apiError(422, 'Invalid', 'the patched object is not an object');
        }
        const o = patched as KubeObject;
        if (o.apiVersion !== current.apiVersion || o.kind !== current.kind)
          throw badRequest('a patch may not change apiVersion or kind');
        if (!explicitRv) o.metadata = { ...o.metadata, resourceVersion: current.metadata.resourceVersion };
        return o;
      },
      !explicitRv,
    );
  }

  async delete(
    ctx: RequestContext,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions,
  ): Promise<Result<KubeObject | StatusBody>> {
    const current = this.getObject(type, namespace, name);
    if (options.preconditions?.uid && options.preconditions.uid !== current.metadata.uid) {
      throw conflict(
        type,
        name,
        `Precondition failed: UID in precondition: ${options.preconditions.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    }
    if (
      options.preconditions?.resourceVersion &&
      options.preconditions.resourceVersion !== current.metadata.resourceVersion
    ) {
      throw conflict(
        type,
        name,
        `Precondition failed: ResourceVersion in precondition: ${options.preconditions.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    }
    const deleteOptions: Record<string, unknown> = { kind: 'DeleteOptions' };
    if (options.gracePeriodSeconds !== undefined) deleteOptions.gracePeriodSeconds = options.gracePeriodSeconds;
    if (options.propagationPolicy) deleteOptions.propagationPolicy = options.propagationPolicy;
    if (ctx.dryRun) deleteOptions.dryRun = ['All'];
    const admitted = await this.runAdmission(ctx, 'DELETE', type, null, current, deleteOptions);
    if (ctx.dryRun) return { code: 200, body: this.deletedResponse(type, current, false), warnings: admitted.warnings };
    // Without a policy the API server applies the resource's default: batch/v1 Jobs orphan their
    // pods (kept for backwards compatibility, pkg/registry/batch/job/strategy.go), the rest cascade.
    const propagationPolicy = options.propagationPolicy ?? (type === RESOURCES.jobs ? 'Orphan' : 'Background');
    const result = this.deleteNow(type, current, { ...options, propagationPolicy });
    return { code: 200, body: result, warnings: admitted.warnings };
  }

  /** Deletion without admission: the server's own path, shared with the garbage collector. */
  deleteNow(type: ResourceType, current: KubeObject, options: DeleteOptions): KubeObject | StatusBody {
    const name = current.metadata.name;
    const ns = current.metadata.namespace;
    const policy = options.propagationPolicy ?? 'Background';
    const finalizers = new Set(current.metadata.finalizers ?? []);
    if (policy === 'Foreground') finalizers.add(FOREGROUND);
    if (policy === 'Orphan') this.orphanDependents(current);
    const grace = this.gracePeriodFor(type, current, options);
    if (current.metadata.deletionTimestamp) {
      // Already terminating: a shorter grace period may still speed it up.
      if (grace === 0 && finalizers.size === 0) return this.removeNow(type, current);
      return this.deletedResponse(type, current, true);
    }
    if (finalizers.size === 0 && grace === 0) {
      if (type === RESOURCES.namespaces) this.deleteNamespaceContents(name);
      return this.removeNow(type, current);
    }
    const marked = structuredClone(current);
    marked.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    marked.metadata.deletionGracePeriodSeconds = grace;
    if (finalizers.size > 0) marked.metadata.finalizers = [...finalizers];
    if (type === RESOURCES.namespaces)
      (
        (marked.status as Record<string, unknown> | undefined) ?? ((marked.status = {}) as Record<string, unknown>)
      ).phase = 'Terminating';
    let stored: KubeObject;
    try {
      stored = this.store.update(type, marked);
    } catch (err) {
      throw translateStoreError(err, type, name);
    }
    if (policy === 'Foreground') this.deleteDependents(stored);
    this.finishDeletionIfDone(type, stored);
    return this.deletedResponse(type, this.store.get(type, ns, name) ?? stored, true);
  }

  /** Pods terminate gracefully (the kubelet removes them); everything else goes at once. */
  private gracePeriodFor(type: ResourceType, current: KubeObject, options: DeleteOptions): number {
    if (type !== RESOURCES.pods) return 0;
    const spec = (current.spec ?? {}) as { nodeName?: string; terminationGracePeriodSeconds?: number };
    const phase = (current.status as { phase?: string } | undefined)?.phase;
    if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
    const grace = options.gracePeriodSeconds ?? spec.terminationGracePeriodSeconds ?? 30;
    if (current.metadata.deletionGracePeriodSeconds !== undefined)
      return Math.min(grace, current.metadata.deletionGracePeriodSeconds);
    return Math.max(0, grace);
  }

  private removeNow(type: ResourceType, current: KubeObject): KubeObject | StatusBody {
    let removed: KubeObject;
    try {
      removed = this.store.remove(type, current.metadata.namespace, current.metadata.name);
    } catch (err) {
      throw translateStoreError(err, type, current.metadata.name);
    }
    return this.deletedResponse(type, removed, false);
  }

  /** The real server returns the object for pods and pending deletions, a Success Status otherwise. */
  private deletedResponse(type: ResourceType, obj: KubeObject, pending: boolean): KubeObject | StatusBody {
    if (type === RESOURCES.pods || pending) return obj;
    const status = statusBody(200, '', '', { name: obj.metadata.name, kind: type.plural, uid: obj.metadata.uid });
    status.status = 'Success';
    delete status.message;
    delete status.reason;
    if (type.group)
      status.details = { name: obj.metadata.name, group: type.group, kind: type.plural, uid: obj.metadata.uid };
    return status;
  }

  /** Removes an object whose deletion was waiting only for finalizers that are now gone. */
  finishDeletionIfDone(type: ResourceType, obj: KubeObject): void {
    if (!obj.metadata.deletionTimestamp || (obj.metadata.finalizers ?? []).length > 0) return;
    if (type === RESOURCES.pods && (obj.metadata.deletionGracePeriodSeconds ?? 0) > 0) return; // the kubelet's business
    if (this.store.get(type, obj.metadata.namespace, obj.metadata.name)) {
      if (type === RESOURCES.namespaces) this.deleteNamespaceContents(obj.metadata.name);
      this.store.remove(type, obj.metadata.namespace, obj.metadata.name);
    }
  }

  /** Objects of every type whose ownerReferences name this uid. */
  dependentsOf(uid: string): Array<{ type: ResourceType; obj: KubeObject }> {
    const out: Array<{ type: ResourceType; obj: KubeObject }> = [];
    for (const type of uniqueTypes()) {
      for (const obj of this.store.list(type, undefined, (o) =>
        (o.metadata.ownerReferences ?? []).some((r) => r.uid === uid),
      ).items) {
        out.push({ type, obj });
      }
    }
    return out;
  }

  private deleteDependents(owner: KubeObject): void {
    for (const { type, obj } of this.dependentsOf(owner.metadata.uid ?? '')) {
      if (!obj.metadata.deletionTimestamp) this.deleteNow(type, obj, { propagationPolicy: 'Foreground' });
    }
  }

  private orphanDependents(owner: KubeObject): void {
    for (const { type, obj } of this.dependentsOf(owner.metadata.uid ?? '')) {
      obj.metadata.ownerReferences = (obj.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.metadata.uid);
      if (obj.metadata.ownerReferences.length === 0) delete obj.metadata.ownerReferences;
      this.store.update(type, { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } } as KubeObject);
    }
  }

  private deleteNamespaceContents(namespace: string): void {
    for (const type of uniqueTypes()) {
      if (!type.namespaced) continue;
      for (const obj of this.store.list(type, namespace).items) {
        if (this.store.get(type, namespace, obj.metadata.name)) this.store.remove(type, namespace, obj.metadata.name);
      }
    }
  }

  /** Called by the garbage collector when a dependent went away: completes foreground deletions. */
  releaseForegroundOwner(type: ResourceType, owner: KubeObject): void {
    if (!(owner.metadata.finalizers ?? []).includes(FOREGROUND)) return;
    if (this.dependentsOf(owner.metadata.uid ?? '').length > 0) return;
    const next = structuredClone(owner);
    next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== FOREGROUND && f !== ORPHAN);
    delete next.metadata.resourceVersion;
    const stored = this.store.update(type, next);
    this.finishDeletionIfDone(type, stored);
  }
}

function invalidRv(type: ResourceType, name: string): ApiError {
  return apiError(
    422,
    'Invalid',
    `${type.kind} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
  );
}

let typesCache: ResourceType[] | undefined;
/** RESOURCES lists core events twice (v1 and events.k8s.io) but they are different buckets; fine. */
function uniqueTypes(): ResourceType[] {
  typesCache ??= Object.values(RESOURCES);
  return typesCache;
}
