// The simulated kube-apiserver over HTTPS: authentication, authorization, discovery, the REST
// verbs of every resource in RESOURCES (with watch, tables, scale/status subresources, dryRun),
// exec over WebSocket, admission webhooks, and fault injection for the guard's tests.
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { Store, StoreError } from '../store.js';
import { RESOURCES, resourceFor } from '../resources.js';
import type { ExecHandler, KubeObject, ResourceType, WatchEvent } from '../types.js';
import { admit, type UserInfo, type WebhookServiceResolver } from './admission.js';
import { MASTERS_GROUP, TokenRegistry } from './auth.js';
import {
  AGGREGATED_CONTENT_TYPE,
  aggregatedDiscovery,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  SERVER_VERSION,
  wantsAggregated,
} from './discovery.js';
import { EXEC_PROTOCOLS, serveExec } from './exec.js';
import { startGarbageCollector, type GarbageCollector } from './garbage-collector.js';
import { openApiV3Document, openApiV3Root } from './openapi.js';
import { applyPatch, patchTypeOf } from './patch.js';
import { queryBool } from './query.js';
import { PROTOBUF_CONTENT_TYPE, ProtobufDecodeError, type ProtobufDecoder } from './protobuf.js';
import { Registry, translateStoreError, type DeleteOptions, type RequestContext, type Result } from './registry.js';
import {
  checkFieldSelector,
  matchesFieldRequirements,
  matchesLabelRequirements,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
} from './selectors.js';
import {
  ApiError,
  apiError,
  badRequest,
  methodNotAllowed,
  notFoundPath,
  qualifiedResource,
  statusBody,
  unsupportedMediaType,
  type StatusBody,
} from './status.js';
import { selectorString, toTable, wantsTable } from './table.js';
import { createCertificateAuthority, issueServerCertificate } from './tls.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** What an authorizer is asked, in the terms of Kubernetes RBAC. */
export interface AuthorizationRequest {
  user: string;
  groups: string[];
  verb: string;
  /** '' for the core group. */
  apiGroup: string;
  /** Plural resource, e.g. 'pods'. */
  resource: string;
  subresource?: string;
  /** Absent for cluster-scoped resources. */
  namespace?: string;
  /** Absent for list/watch/create of a collection. */
  name?: string;
}

export type Authorizer = (request: AuthorizationRequest) => boolean | Promise<boolean>;

export interface FaultMatch {
  verb?: Verb | string;
  /** Plural resource name, optionally with "/subresource" (e.g. "deployments/scale"). */
  resource?: string;
  namespace?: string;
  name?: string;
  user?: string;
}

export type FaultResponse =
  | { code: 409 | 429 | 500 | 503; times?: number; message?: string }
  | { delayMs: number; times?: number }
  | { dropWatchAfterMs: number; times?: number };

export interface FaultRule {
  match: FaultMatch;
  respond: FaultResponse;
}

export interface ApiLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ApiServerOptions {
  store: Store;
  execHandler?: ExecHandler;
  authorize?: Authorizer;
  webhookServiceResolver?: WebhookServiceResolver;
  faults?: FaultRule[];
  logger?: ApiLogger;
  /** Create default, kube-system, kube-public, kube-node-lease when missing (default true). */
  bootstrapNamespaces?: boolean;
  /** Decodes protobuf request bodies; without it they are answered 415 (see protobuf.ts). */
  protobuf?: ProtobufDecoder;
}

export interface RequestRecord {
  verb: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  user: string;
  code: number;
  dryRun: boolean;
  time: string;
  /** From the request's arrival to its answer (for a watch: until it ended). */
  durationMs: number;
}

export interface ApiServer {
  url: string;
  port: number;
  caPem: string;
  tokens: TokenRegistry;
  registry: Registry;
  /** Live list: push/splice to change the faults of a running server. */
  faults: FaultRule[];
  /** The last requests served (newest last, at most 5000). */
  requests: RequestRecord[];
  kubeconfig(token?: string, namespace?: string): string;
  /** Resolves once the garbage collector has handled the deletions so far. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

interface ResourcePath {
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const MAX_BODY = 3 * 1024 * 1024;

/** Parses /api/v1/... and /apis/<g>/<v>/... into the addressed resource. */
export function parseResourcePath(pathname: string): ResourcePath | 'discovery' | undefined {
  const segs = pathname
    .split('/')
    .filter((s) => s !== '')
    .map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs[1]) {
    group = '';
    version = segs[1];
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs[1] && segs[2]) {
    group = segs[1];
    version = segs[2];
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  if (rest.length === 0) return 'discovery';
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural = '', name, subresource, ...extra] = rest;
  if (extra.length > 0) return undefined;
  const type = resourceFor(group, version, plural);
  if (!type) return undefined;
  if (namespace !== undefined && !type.namespaced) return undefined;
  if (namespace === undefined && type.namespaced && name !== undefined) return undefined;
  if (subresource !== undefined && !(type.subresources ?? []).includes(subresource as 'status')) return undefined;
  const out: ResourcePath = { type };
  if (namespace !== undefined) out.namespace = namespace;
  if (name !== undefined) out.name = name;
  if (subresource !== undefined) out.subresource = subresource;
  return out;
}

function verbOf(method: string, path: ResourcePath, query: URLSearchParams): Verb | undefined {
  switch (method) {
    case 'GET':
      if (path.name === undefined) return queryBool(query, 'watch') ? 'watch' : 'list';
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return path.name === undefined ? 'deletecollection' : 'delete';
    default:
      return undefined;
  }
}

export function forbiddenError(user: string, verb: string, path: ResourcePath): ApiError {
  const resource = path.subresource ? `${path.type.plural}/${path.subresource}` : path.type.plural;
  const label =
    path.name !== undefined ? `${qualifiedResource(path.type)} "${path.name}"` : qualifiedResource(path.type);
  const scope = path.namespace ? `in the namespace "${path.namespace}"` : 'at the cluster scope';
  const details: NonNullable<StatusBody['details']> = {};
  if (path.name !== undefined) details.name = path.name;
  if (path.type.group) details.group = path.type.group;
  details.kind = path.type.plural;
  return apiError(
    403,
    'Forbidden',
    `${label} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${path.type.group}" ${scope}`,
    details,
  );
}

function warningHeader(text: string): string {
  return `299 - "${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  warnings: string[] = [],
  contentType = 'application/json',
): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': contentType,
    'Cache-Control': 'no-cache, private',
    'Audit-Id': randomUUID(),
    'Content-Length': String(Buffer.byteLength(text)),
  };
  if (warnings.length > 0) headers.Warning = warnings.map(warningHeader);
  res.writeHead(code, headers);
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown, logger?: ApiLogger): number {
  const status = toStatus(err);
  if (status.code >= 500 && logger) logger.warn({ err }, 'internal error');
  if (status.code === 429) res.setHeader('Retry-After', String(status.details?.retryAfterSeconds ?? 1));
  sendJson(res, status.code, status);
  return status.code;
}

function toStatus(err: unknown): StatusBody {
  if (err instanceof ApiError) return err.status;
  if (err instanceof SelectorError) return statusBody(400, 'BadRequest', err.message);
  if (err instanceof StoreError) return statusBody(err.code, err.reason, err.message);
  const message = err instanceof Error ? err.message : String(err);
  return statusBody(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/** The object of a create/update/delete body, in JSON or (with a decoder) protobuf. */
async function readObjectBody(req: IncomingMessage, protobuf: ProtobufDecoder | undefined): Promise<unknown> {
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === PROTOBUF_CONTENT_TYPE && protobuf) {
    const raw = await readRawBody(req);
    if (raw.length === 0) return undefined;
    try {
      return await protobuf.decode(raw);
    } catch (err) {
      if (err instanceof ProtobufDecodeError) throw badRequest(`error decoding request body: ${err.message}`);
      throw err;
    }
  }
  if (type !== 'application/json' && type !== '' && type !== '*/*' && type !== 'application/yaml') {
    const accepted = ['application/json', 'application/yaml', ...(protobuf ? [PROTOBUF_CONTENT_TYPE] : [])].join(', ');
    throw apiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted}`,
    );
  }
  return parseJsonBody(await readBody(req));
}

async function readRawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw apiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRawBody(req)).toString('utf8');
}

function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`error decoding request body: ${(err as Error).message}`);
  }
}

function listKind(type: ResourceType): string {
  return `${type.kind}List`;
}

function stripTypeMeta(o: KubeObject): Omit<KubeObject, 'apiVersion' | 'kind'> {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

function dryRunOf(query: URLSearchParams, body?: unknown): boolean {
  const values = query.getAll('dryRun');
  const fromBody = (body as { dryRun?: string[] } | undefined)?.dryRun ?? [];
  const all = [...values, ...fromBody];
  for (const v of all) if (v !== 'All') throw badRequest(`dryRun: Unsupported value: "${v}": supported values: "All"`);
  return all.length > 0;
}

function toScale(_type: ResourceType, o: KubeObject): KubeObject {
  const spec = (o.spec ?? {}) as { replicas?: number; selector?: unknown };
  const status = (o.status ?? {}) as { replicas?: number };
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: o.metadata.name,
      namespace: o.metadata.namespace,
      uid: o.metadata.uid,
      resourceVersion: o.metadata.resourceVersion,
      creationTimestamp: o.metadata.creationTimestamp,
    },
    spec: { replicas: spec.replicas ?? 0 },
    status: {
      replicas: status.replicas ?? 0,
      selector: selectorString(spec.selector) === '<none>' ? '' : selectorString(spec.selector),
    },
  };
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { store, logger } = options;
  const ca = createCertificateAuthority('sim-kube-apiserver-ca');
  const serving = issueServerCertificate(ca, {
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    ipAddresses: ['127.0.0.1'],
    commonName: 'kube-apiserver',
  });
  const tokens = new TokenRegistry();
  const registry = new Registry(store, options.webhookServiceResolver);
  const faults: FaultRule[] = options.faults ?? [];
  const requests: RequestRecord[] = [];
  const openStreams = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => EXEC_PROTOCOLS.find((p) => protocols.has(p)) ?? false,
  });

  if (options.bootstrapNamespaces !== false) {
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!store.get(RESOURCES.namespaces, undefined, name)) {
        await registry.create(
          { user: { username: 'system:apiserver', groups: [MASTERS_GROUP] }, dryRun: false },
          RESOURCES.namespaces,
          undefined,
          { metadata: { name } },
        );
      }
    }
  }
  const gc: GarbageCollector = startGarbageCollector(registry);

  const record = (entry: Omit<RequestRecord, 'time' | 'durationMs'>, startedAt: number) => {
    requests.push({ ...entry, time: new Date().toISOString(), durationMs: performance.now() - startedAt });
    if (requests.length > 5000) requests.splice(0, requests.length - 5000);
  };

  const authorize = async (user: UserInfo, verb: string, path: ResourcePath): Promise<void> => {
    if (!options.authorize || user.groups.includes(MASTERS_GROUP)) return;
    const request: AuthorizationRequest = {
      user: user.username,
      groups: user.groups,
      verb,
      apiGroup: path.type.group,
      resource: path.type.plural,
    };
    if (path.subresource) request.subresource = path.subresource;
    // The real server's request info puts a Namespace's own name in the namespace attribute.
    const namespace = path.type === RESOURCES.namespaces ? path.name : path.namespace;
    if (namespace) request.namespace = namespace;
    if (path.name) request.name = path.name;
    if (!(await options.authorize(request))) {
      throw forbiddenError(user.username, verb, namespace && !path.namespace ? { ...path, namespace } : path);
    }
  };

  /** Applies a matching fault: throws the injected error, waits, or returns a watch drop delay. */
  const applyFaults = async (verb: string, path: ResourcePath, user: UserInfo): Promise<number | undefined> => {
    let dropAfter: number | undefined;
    for (const rule of [...faults]) {
      const m = rule.match;
      const resource = path.subresource ? `${path.type.plural}/${path.subresource}` : path.type.plural;
      if (m.verb && m.verb !== verb) continue;
      if (m.resource && m.resource !== resource && m.resource !== path.type.plural) continue;
      if (m.resource && m.resource === path.type.plural && path.subresource && m.resource !== resource) continue;
      if (m.namespace && m.namespace !== path.namespace) continue;
      if (m.name && m.name !== path.name) continue;
      if (m.user && m.user !== user.username) continue;
      const r = rule.respond;
      if (r.times !== undefined) {
        if (r.times <= 0) continue;
        r.times -= 1;
      }
      if ('code' in r) throw injectedError(r.code, r.message, path);
      if ('delayMs' in r) await new Promise((resolve) => setTimeout(resolve, r.delayMs));
      if ('dropWatchAfterMs' in r) dropAfter = r.dropWatchAfterMs;
    }
    return dropAfter;
  };

  const handleResource = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    user: UserInfo,
    path: ResourcePath,
  ): Promise<number> => {
    const method = req.method ?? 'GET';
    const query = url.searchParams;
    const verb = verbOf(method, path, query);
    if (!verb) throw methodNotAllowed();
    if (path.subresource === 'exec') throw badRequest('Upgrade request required');
    if (path.subresource === 'log') throw badRequest('the simulated cluster keeps no container logs');
    if (path.subresource && !['get', 'update', 'patch'].includes(verb)) throw methodNotAllowed();
    await authorize(user, verb, path);
    const dropAfter = await applyFaults(verb, path, user);
    const accept = req.headers.accept;
    const ctxBase = { user, fieldManager: query.get('fieldManager') ?? undefined };
    const send = (result: Result) => {
      sendJson(res, result.code, result.body, result.warnings);
      return result.code;
    };
    switch (verb) {
      case 'get': {
        const obj = registry.getObject(path.type, path.namespace, path.name ?? '');
        const body = path.subresource === 'scale' ? toScale(path.type, obj) : obj;
        if (wantsTable(accept) && !path.subresource) {
          sendJson(
            res,
            200,
            toTable([obj], { resourceVersion: obj.metadata.resourceVersion }, query.get('includeObject') ?? undefined),
            [],
            'application/json;as=Table;v=v1;g=meta.k8s.io',
          );
          return 200;
        }
        return send({ code: 200, body, warnings: [] });
      }
      case 'list':
        return listObjects(res, path, query, accept);
      case 'watch':
        return watchObjects(req, res, path, query, accept, dropAfter);
      case 'create': {
        const body = await readObjectBody(req, options.protobuf);
        const ctx: RequestContext = { ...ctxBase, dryRun: dryRunOf(query) };
        if (path.name !== undefined) throw methodNotAllowed();
        return send(await registry.create(ctx, path.type, path.namespace, body));
      }
      case 'update': {
        const body = await readObjectBody(req, options.protobuf);
        const ctx: RequestContext = { ...ctxBase, dryRun: dryRunOf(query) };
        if (path.subresource === 'scale') return send(await scaleUpdate(ctx, path, (scale) => mergeScale(scale, body)));
        return send(await registry.update(ctx, path.type, path.namespace, path.name ?? '', path.subresource, body));
      }
      case 'patch': {
        const patchType = patchTypeOf(req.headers['content-type']);
        if (!patchType) throw unsupportedMediaType(req.headers['content-type'] ?? '');
        const raw = await readBody(req);
        const ctx: RequestContext = { ...ctxBase, dryRun: dryRunOf(query) };
        if (patchType === 'apply' && queryBool(query, 'force')) ctx.fieldManager ??= 'unknown';
        if (path.subresource === 'scale') {
          const parsed = patchType === 'apply' ? parseYaml(raw) : parseJsonBody(raw);
          return send(await scaleUpdate(ctx, path, (scale) => applyPatch(patchType, scale, parsed) as KubeObject));
        }
        return send(
          await registry.patch(ctx, path.type, path.namespace, path.name ?? '', path.subresource, patchType, raw),
        );
      }
      case 'delete': {
        const body = ((await readObjectBody(req, options.protobuf)) ?? {}) as DeleteOptions & {
          dryRun?: string[];
          orphanDependents?: boolean;
        };
        const ctx: RequestContext = { ...ctxBase, dryRun: dryRunOf(query, body) };
        return send(
          await registry.delete(ctx, path.type, path.namespace, path.name ?? '', deleteOptionsOf(query, body)),
        );
      }
      case 'deletecollection': {
        const body = ((await readObjectBody(req, options.protobuf)) ?? {}) as DeleteOptions & { dryRun?: string[] };
        const ctx: RequestContext = { ...ctxBase, dryRun: dryRunOf(query, body) };
        const items = selectObjects(path, query);
        const deleted: unknown[] = [];
        for (const item of items) {
          const result = await registry.delete(
            ctx,
            path.type,
            item.metadata.namespace,
            item.metadata.name,
            deleteOptionsOf(query, body),
          );
          deleted.push(result.body);
        }
        return send({
          code: 200,
          body: {
            kind: listKind(path.type),
            apiVersion: groupVersionOf(path.type),
            metadata: { resourceVersion: store.resourceVersion },
            items: deleted,
          },
          warnings: [],
        });
      }
    }
  };

  const scaleUpdate = async (
    ctx: RequestContext,
    path: ResourcePath,
    produce: (scale: KubeObject) => KubeObject,
  ): Promise<Result> => {
    const current = registry.getObject(path.type, path.namespace, path.name ?? '');
    const oldScale = toScale(path.type, current);
    const newScale = produce(structuredClone(oldScale));
    const replicas = (newScale.spec as { replicas?: unknown } | undefined)?.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw apiError(
        422,
        'Invalid',
        `Scale.autoscaling "${path.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
      );
    }
    const rv = newScale.metadata?.resourceVersion;
    const outcome = await admit(
      store,
      {
        operation: 'UPDATE',
        type: path.type,
        kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
        subresource: 'scale',
        namespace: path.namespace,
        name: path.name ?? '',
        object: newScale,
        oldObject: oldScale,
        dryRun: ctx.dryRun,
        options: { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1', ...(ctx.dryRun ? { dryRun: ['All'] } : {}) },
        user: ctx.user,
      },
      options.webhookServiceResolver,
    );
    const admittedReplicas = ((outcome.object?.spec ?? {}) as { replicas?: number }).replicas ?? replicas;
    const next = structuredClone(current);
    (next.spec as Record<string, unknown>).replicas = admittedReplicas;
    next.metadata.resourceVersion = rv || current.metadata.resourceVersion;
    if (ctx.dryRun) {
      if (rv && rv !== current.metadata.resourceVersion)
        throw translateStoreError(new StoreError('Conflict', ''), path.type, path.name ?? '');
      return { code: 200, body: toScale(path.type, next), warnings: outcome.warnings };
    }
    try {
      const stored = store.update(path.type, next);
      return { code: 200, body: toScale(path.type, stored), warnings: outcome.warnings };
    } catch (err) {
      throw translateStoreError(err, path.type, path.name ?? '');
    }
  };

  const selectObjects = (path: ResourcePath, query: URLSearchParams): KubeObject[] => {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'));
    checkFieldSelector(path.type, fields);
    return store.list(
      path.type,
      path.namespace,
      (o) => matchesLabelRequirements(o.metadata.labels, labels) && matchesFieldRequirements(o, fields),
    ).items;
  };

  const listObjects = (
    res: ServerResponse,
    path: ResourcePath,
    query: URLSearchParams,
    accept: string | undefined,
  ): number => {
    const resourceVersion = store.resourceVersion;
    let items = selectObjects(path, query);
    const limit = Number(query.get('limit') ?? '0');
    const token = query.get('continue');
    let offset = 0;
    if (token) {
      try {
        offset = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { offset: number }).offset;
        if (!Number.isInteger(offset) || offset < 0) throw new Error('bad offset');
      } catch {
        throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      }
    }
    const meta: Record<string, unknown> = { resourceVersion };
    if (offset > 0) items = items.slice(offset);
    if (limit > 0 && items.length > limit) {
      meta.continue = Buffer.from(JSON.stringify({ offset: offset + limit, rv: resourceVersion })).toString(
        'base64url',
      );
      meta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    if (wantsTable(accept)) {
      sendJson(
        res,
        200,
        toTable(items, meta, query.get('includeObject') ?? undefined, path.type.kind),
        [],
        'application/json;as=Table;v=v1;g=meta.k8s.io',
      );
      return 200;
    }
    sendJson(res, 200, {
      kind: listKind(path.type),
      apiVersion: groupVersionOf(path.type),
      metadata: meta,
      items: items.map(stripTypeMeta),
    });
    return 200;
  };

  const watchObjects = (
    req: IncomingMessage,
    res: ServerResponse,
    path: ResourcePath,
    query: URLSearchParams,
    accept: string | undefined,
    dropAfter: number | undefined,
  ): number => {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'));
    checkFieldSelector(path.type, fields);
    const matches = (o: KubeObject) =>
      matchesLabelRequirements(o.metadata.labels, labels) && matchesFieldRequirements(o, fields);
    const table = wantsTable(accept);
    const includeObject = query.get('includeObject') ?? undefined;
    const rv = query.get('resourceVersion') ?? '';
    const sendInitial = queryBool(query, 'sendInitialEvents');
    const bookmarks = queryBool(query, 'allowWatchBookmarks');
    const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const known = new Set<string>();

    res.writeHead(200, {
      'Content-Type': table ? 'application/json;as=Table;v=v1;g=meta.k8s.io' : 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
      'Audit-Id': randomUUID(),
    });
    res.flushHeaders();
    openStreams.add(res);
    const write = (event: { type: string; object: unknown }) => {
      if (res.writableEnded) return;
      const object =
        table && event.type !== 'ERROR' && event.type !== 'BOOKMARK'
          ? toTable([event.object as KubeObject], {}, includeObject, path.type.kind)
          : event.object;
      res.write(JSON.stringify({ type: event.type, object }) + '\n');
    };
    const onEvent = (event: WatchEvent) => {
      const k = key(event.object);
      if (matches(event.object)) {
        if (event.type === 'DELETED') known.delete(k);
        else known.add(k);
        write(event);
      } else if (known.has(k)) {
        // An object that stops matching the selector leaves the watcher's view, as for real.
        known.delete(k);
        write({ type: 'DELETED', object: event.object });
      }
    };

    const current = store.list(path.type, path.namespace).items.filter(matches);
    let stop: () => void;
    try {
      // The stream only serialises what it is sent: no copy per watch connection.
      stop = store.watch(path.type, path.namespace, rv === '' || rv === '0' ? undefined : rv, onEvent, {
        readOnly: true,
      });
    } catch (err) {
      const status =
        err instanceof StoreError && err.reason === 'Gone'
          ? statusBody(410, 'Expired', err.message)
          : toStatus(translateStoreError(err, path.type, ''));
      write({ type: 'ERROR', object: status });
      openStreams.delete(res);
      res.end();
      return 200;
    }
    if (rv === '' || rv === '0' || sendInitial) {
      for (const o of current) {
        known.add(key(o));
        write({ type: 'ADDED', object: o });
      }
    } else {
      for (const o of current) known.add(key(o));
    }
    const bookmark = (annotations?: Record<string, string>) =>
      write({
        type: 'BOOKMARK',
        object: {
          kind: path.type.kind,
          apiVersion: groupVersionOf(path.type),
          metadata: { resourceVersion: store.resourceVersion, ...(annotations ? { annotations } : {}) },
        },
      });
    if (sendInitial && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });

    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      stop();
      timers.forEach(clearTimeout);
      openStreams.delete(res);
      if (!res.writableEnded) res.end();
    };
    if (bookmarks) {
      const interval = setInterval(() => bookmark(), 5_000);
      timers.push(interval);
    }
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
    if (timeoutSeconds > 0) timers.push(setTimeout(finish, timeoutSeconds * 1000));
    if (dropAfter !== undefined) timers.push(setTimeout(finish, dropAfter));
    req.on('close', finish);
    res.on('close', finish);
    return 200;
  };

  const handleDiscovery = (req: IncomingMessage, res: ServerResponse, pathname: string): boolean => {
    const accept = req.headers.accept;
    if (pathname === '/version' || pathname === '/version/') {
      sendJson(res, 200, SERVER_VERSION);
      return true;
    }
    if (['/healthz', '/readyz', '/livez'].includes(pathname)) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return true;
    }
    if (pathname === '/api' || pathname === '/api/') {
      if (wantsAggregated(accept)) sendJson(res, 200, aggregatedDiscovery(true), [], AGGREGATED_CONTENT_TYPE);
      else sendJson(res, 200, apiVersions(`127.0.0.1:${port}`));
      return true;
    }
    if (pathname === '/apis' || pathname === '/apis/') {
      if (wantsAggregated(accept)) sendJson(res, 200, aggregatedDiscovery(false), [], AGGREGATED_CONTENT_TYPE);
      else sendJson(res, 200, apiGroupList());
      return true;
    }
    const segs = pathname.split('/').filter(Boolean);
    if (segs[0] === 'openapi' && segs[1] === 'v3') {
      if (segs.length === 2) {
        sendJson(res, 200, openApiV3Root());
        return true;
      }
      const [, , root, a = '', b = ''] = segs;
      const doc = root === 'api' ? openApiV3Document('', a) : root === 'apis' ? openApiV3Document(a, b) : undefined;
      if (!doc) return false;
      sendJson(res, 200, doc);
      return true;
    }
    if (segs[0] === 'api' && segs.length === 2) {
      const list = apiResourceList('', segs[1] ?? '');
      if (!list) return false;
      sendJson(res, 200, list);
      return true;
    }
    if (segs[0] === 'apis' && segs.length === 2) {
      const group = apiGroup(segs[1] ?? '');
      if (!group) return false;
      sendJson(res, 200, group);
      return true;
    }
    if (segs[0] === 'apis' && segs.length === 3) {
      const list = apiResourceList(segs[1] ?? '', segs[2] ?? '');
      if (!list) return false;
      sendJson(res, 200, list);
      return true;
    }
    return false;
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const startedAt = performance.now();
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const user = tokens.authenticate(req.headers.authorization);
    let code = 0;
    let path: ResourcePath | 'discovery' | undefined;
    let verb: string = (req.method ?? 'GET').toLowerCase();
    try {
      if (!user) {
        if (['/healthz', '/readyz', '/livez', '/version'].includes(url.pathname)) {
          handleDiscovery(req, res, url.pathname);
          return;
        }
        throw apiError(401, 'Unauthorized', 'Unauthorized');
      }
      if (handleDiscovery(req, res, url.pathname)) {
        code = 200;
        return;
      }
      path = parseResourcePath(url.pathname);
      if (path === undefined || path === 'discovery') throw notFoundPath();
      verb = verbOf(req.method ?? 'GET', path, url.searchParams) ?? verb;
      code = await handleResource(req, res, url, user, path);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      code = sendError(res, err, logger);
    } finally {
      if (user && path && path !== 'discovery') {
        const entry: Omit<RequestRecord, 'time' | 'durationMs'> = {
          verb,
          resource: path.type.plural,
          user: user.username,
          code,
          dryRun: url.searchParams.has('dryRun'),
        };
        if (path.subresource) entry.subresource = path.subresource;
        if (path.namespace) entry.namespace = path.namespace;
        if (path.name) entry.name = path.name;
        record(entry, startedAt);
      }
      logger?.debug({ method: req.method, url: req.url, code, user: user?.username }, 'request');
    }
  };

  const rejectUpgrade = (socket: Socket, err: unknown) => {
    const status = toStatus(err);
    const text = JSON.stringify(status);
    const reason =
      status.code === 404
        ? 'Not Found'
        : status.code === 403
          ? 'Forbidden'
          : status.code === 401
            ? 'Unauthorized'
            : status.code >= 500
              ? 'Internal Server Error'
              : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${status.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  };

  const onUpgrade = async (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const startedAt = performance.now();
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const user = tokens.authenticate(req.headers.authorization);
    let code = 101;
    const path = parseResourcePath(url.pathname);
    try {
      if (!user) throw apiError(401, 'Unauthorized', 'Unauthorized');
      if (path === undefined || path === 'discovery' || path.subresource !== 'exec' || path.name === undefined)
        throw notFoundPath();
      // Since 1.35 a WebSocket (GET) exec needs `create` as well as `get` on pods/exec.
      if (req.method === 'GET') await authorize(user, 'get', path);
      await authorize(user, 'create', path);
      await applyFaults('create', path, user);
      const { request, streams } = prepareExec(registry, path, url.searchParams, options.execHandler);
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        throw badRequest('unable to upgrade connection: only WebSocket (v4/v5.channel.k8s.io) exec is simulated');
      }
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (!EXEC_PROTOCOLS.some((p) => offered.includes(p))) {
        throw badRequest(
          `unable to upgrade connection: none of the offered subprotocols ${JSON.stringify(offered)} is supported (want one of ${EXEC_PROTOCOLS.join(', ')})`,
        );
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        void serveExec(ws, request, streams, options.execHandler as ExecHandler, socket);
      });
    } catch (err) {
      code = toStatus(err).code;
      rejectUpgrade(socket, err);
    } finally {
      if (user && path && path !== 'discovery') {
        const entry: Omit<RequestRecord, 'time' | 'durationMs'> = {
          verb: 'create',
          resource: path.type.plural,
          subresource: 'exec',
          user: user.username,
          code,
          dryRun: false,
        };
        if (path.namespace) entry.namespace = path.namespace;
        if (path.name) entry.name = path.name;
        record(entry, startedAt);
      }
    }
  };

  // Idle keep-alive connections stay open 90 s, as kube-apiserver's secure serving keeps them (Node's
  // default of 5 s made every client open a new TLS connection after each quiet moment).
  const server = https.createServer(
    { cert: serving.certPem, key: serving.keyPem, keepAliveTimeout: 90_000 },
    (req, res) => void onRequest(req, res),
  );
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void onUpgrade(req, socket, head));
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;

  return {
    url,
    port,
    caPem: ca.certPem,
    tokens,
    registry,
    faults,
    requests,
    kubeconfig: (token = tokens.admin, namespace = 'default') => kubeconfigYaml(url, ca.certPem, token, namespace),
    settled: () => gc.idle(),
    close: async () => {
      gc.stop();
      for (const res of openStreams) res.end();
      for (const client of wss.clients) client.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function groupVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

function injectedError(code: number, message: string | undefined, path: ResourcePath): ApiError {
  switch (code) {
    case 409:
      return apiError(
        409,
        'Conflict',
        message ??
          `Operation cannot be fulfilled on ${qualifiedResource(path.type)} "${path.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`,
        { name: path.name, kind: path.type.plural, ...(path.type.group ? { group: path.type.group } : {}) },
      );
    case 429:
      return apiError(429, 'TooManyRequests', message ?? 'Too many requests, please try again later.', {
        retryAfterSeconds: 1,
      });
    case 503:
      return apiError(503, 'ServiceUnavailable', message ?? 'the server is currently unable to handle the request');
    default:
      return apiError(500, 'InternalError', `Internal error occurred: ${message ?? 'injected fault'}`, {
        causes: [{ message: message ?? 'injected fault' }],
      });
  }
}

function deleteOptionsOf(query: URLSearchParams, body: DeleteOptions & { orphanDependents?: boolean }): DeleteOptions {
  const options: DeleteOptions = {};
  const grace =
    query.get('gracePeriodSeconds') ?? (body.gracePeriodSeconds !== undefined ? String(body.gracePeriodSeconds) : null);
  if (grace !== null) {
    const n = Number(grace);
    if (!Number.isInteger(n)) throw badRequest(`invalid gracePeriodSeconds "${grace}"`);
    options.gracePeriodSeconds = Math.max(0, n);
  }
  const policy =
    query.get('propagationPolicy') ?? body.propagationPolicy ?? (body.orphanDependents ? 'Orphan' : undefined);
  if (policy !== undefined && policy !== null) {
    if (policy !== 'Background' && policy !== 'Foreground' && policy !== 'Orphan') {
      throw badRequest(
        `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan", "nil"`,
      );
    }
    options.propagationPolicy = policy;
  }
  if (body.preconditions) options.preconditions = body.preconditions;
  return options;
}

function mergeScale(current: KubeObject, body: unknown): KubeObject {
  const scale = (body ?? {}) as KubeObject;
  if (scale.kind !== undefined && scale.kind !== 'Scale')
    throw badRequest(`the kind in the data (${String(scale.kind)}) does not match the expected kind (Scale)`);
  return {
    ...current,
    metadata: { ...current.metadata, resourceVersion: scale.metadata?.resourceVersion ?? '' },
    spec: scale.spec ?? {},
  };
}

function prepareExec(registry: Registry, path: ResourcePath, query: URLSearchParams, handler: ExecHandler | undefined) {
  const pod = registry.getObject(path.type, path.namespace, path.name ?? '');
  const command = query.getAll('command');
  if (command.length === 0) throw badRequest('you must specify at least 1 command');
  const bool = (name: string) => queryBool(query, name);
  const streams = { stdin: bool('stdin'), stdout: bool('stdout'), stderr: bool('stderr') };
  if (!streams.stdin && !streams.stdout && !streams.stderr)
    throw badRequest('you must specify at least 1 of stdin, stdout, stderr');
  const containers = (((pod.spec ?? {}) as { containers?: Array<{ name: string }> }).containers ?? []).map(
    (c) => c.name,
  );
  let container = query.get('container') ?? '';
  if (!container) {
    if (containers.length !== 1) {
      throw badRequest(
        `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${containers.join(' ')}]`,
      );
    }
    container = containers[0] ?? '';
  }
  if (!containers.includes(container))
    throw badRequest(`container ${container} is not valid for pod ${pod.metadata.name}`);
  const status = (pod.status ?? {}) as {
    phase?: string;
    containerStatuses?: Array<{ name: string; state?: { running?: unknown } }>;
  };
  if (status.phase === 'Succeeded' || status.phase === 'Failed') {
    throw badRequest(`cannot exec into a container in a completed pod; current phase is ${status.phase}`);
  }
  const running =
    status.phase === 'Running' &&
    (status.containerStatuses === undefined ||
      status.containerStatuses.some((c) => c.name === container && c.state?.running !== undefined));
  if (!running) throw badRequest(`unable to upgrade connection: container not found ("${container}")`);
  if (!handler)
    throw apiError(
      500,
      'InternalError',
      'Internal error occurred: no container runtime serves exec in this simulated cluster',
    );
  return {
    request: { namespace: path.namespace ?? '', pod, container, command, stdin: streams.stdin, tty: bool('tty') },
    streams,
  };
}

function kubeconfigYaml(server: string, caPem: string, token: string, namespace: string): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'sim', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } },
    ],
    users: [{ name: 'sim-user', user: { token } }],
    contexts: [{ name: 'sim', context: { cluster: 'sim', user: 'sim-user', namespace } }],
    'current-context': 'sim',
    preferences: {},
  });
}
