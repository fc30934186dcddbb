// Admission webhooks as kube-apiserver calls them: MutatingWebhookConfigurations in name order,
// then ValidatingWebhookConfigurations; rules/objectSelector/namespaceSelector matching; an
// AdmissionReview v1 POSTed over TLS verified against caBundle; failurePolicy, timeoutSeconds,
// sideEffects vs dryRun; JSONPatch responses applied; warnings collected; denials worded as real.
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { Store } from '../store.js';
import { RESOURCES } from '../resources.js';
import type { KubeObject, ResourceType } from '../types.js';
import { applyJsonPatch } from './patch.js';
import { matchesLabelSelectorObject, type LabelSelectorObject } from './selectors.js';
import { ApiError, apiError, internalError, statusBody, type StatusBody } from './status.js';

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

export interface AdmissionAttributes {
  operation: AdmissionOperation;
  type: ResourceType;
  /** The kind/resource as the request addressed it (autoscaling/v1 Scale for the scale subresource). */
  kind?: { group: string; version: string; kind: string };
  subresource?: string;
  namespace?: string;
  name: string;
  object: KubeObject | null;
  oldObject: KubeObject | null;
  dryRun: boolean;
  options: Record<string, unknown>;
  user: UserInfo;
}

export interface AdmissionOutcome {
  object: KubeObject | null;
  warnings: string[];
}

/** Maps a webhook's Service to the local address that serves it. */
export type WebhookServiceResolver = (
  namespace: string,
  name: string,
  port: number,
) => { host: string; port: number } | undefined;

interface WebhookRule {
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  operations?: string[];
  scope?: string;
}

interface Webhook {
  name: string;
  clientConfig?: {
    url?: string;
    service?: { namespace: string; name: string; path?: string; port?: number };
    caBundle?: string;
  };
  rules?: WebhookRule[];
  failurePolicy?: 'Fail' | 'Ignore';
  matchPolicy?: 'Exact' | 'Equivalent';
  namespaceSelector?: LabelSelectorObject;
  objectSelector?: LabelSelectorObject;
  sideEffects?: 'None' | 'NoneOnDryRun' | 'Some' | 'Unknown';
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
}

const EXEMPT_GROUPS = new Set(['admissionregistration.k8s.io']);

function listMatches(list: string[] | undefined, value: string): boolean {
  return (list ?? []).some((entry) => entry === '*' || entry === value);
}

function resourceMatches(
  ruleResources: string[] | undefined,
  plural: string,
  subresource: string | undefined,
): boolean {
  return (ruleResources ?? []).some((entry) => {
    if (entry === '*/*') return true;
    const [res, sub] = entry.split('/', 2);
    if (sub === undefined) return (res === '*' || res === plural) && subresource === undefined;
    if (subresource === undefined) return false;
    return (res === '*' || res === plural) && (sub === '*' || sub === subresource);
  });
}

function ruleMatches(rule: WebhookRule, attrs: AdmissionAttributes): boolean {
  const scope = rule.scope ?? '*';
  if (scope === 'Cluster' && attrs.type.namespaced) return false;
  if (scope === 'Namespaced' && !attrs.type.namespaced) return false;
  return (
    listMatches(rule.operations, attrs.operation) &&
    listMatches(rule.apiGroups, attrs.type.group) &&
    listMatches(rule.apiVersions, attrs.type.version) &&
    resourceMatches(rule.resources, attrs.type.plural, attrs.subresource)
  );
}

function namespaceLabels(store: Store, attrs: AdmissionAttributes): Record<string, string> | undefined {
  if (attrs.type.plural === 'namespaces' && attrs.type.group === '') {
    return (attrs.object ?? attrs.oldObject)?.metadata.labels ?? {};
  }
  if (!attrs.type.namespaced || !attrs.namespace) return undefined;
  const ns = store.get(RESOURCES.namespaces, undefined, attrs.namespace);
  return ns?.metadata.labels ?? { 'kubernetes.io/metadata.name': attrs.namespace };
}

function webhookMatches(store: Store, hook: Webhook, attrs: AdmissionAttributes): boolean {
  if (!(hook.rules ?? []).some((rule) => ruleMatches(rule, attrs))) return false;
  const nsLabels = namespaceLabels(store, attrs);
  // Cluster-scoped objects (other than Namespaces) are not subject to namespaceSelector.
  if (nsLabels !== undefined && !matchesLabelSelectorObject(nsLabels, hook.namespaceSelector)) return false;
  if (hook.objectSelector) {
    const candidates = [attrs.object, attrs.oldObject].filter((o): o is KubeObject => o !== null);
    if (!candidates.some((o) => matchesLabelSelectorObject(o.metadata.labels ?? {}, hook.objectSelector))) return false;
  }
  return true;
}

function buildReview(attrs: AdmissionAttributes, uid: string, apiVersion: string): Record<string, unknown> {
  const kind = attrs.kind ?? { group: attrs.type.group, version: attrs.type.version, kind: attrs.type.kind };
  const resource = { group: attrs.type.group, version: attrs.type.version, resource: attrs.type.plural };
  const request: Record<string, unknown> = { uid, kind, resource };
  if (attrs.subresource) request.subResource = attrs.subresource;
  request.requestKind = kind;
  request.requestResource = resource;
  if (attrs.subresource) request.requestSubResource = attrs.subresource;
  if (attrs.name) request.name = attrs.name;
  if (attrs.namespace) request.namespace = attrs.namespace;
  request.operation = attrs.operation;
  const userInfo: Record<string, unknown> = { username: attrs.user.username };
  if (attrs.user.uid) userInfo.uid = attrs.user.uid;
  userInfo.groups = attrs.user.groups;
  request.userInfo = userInfo;
  request.object = attrs.object;
  request.oldObject = attrs.oldObject;
  request.dryRun = attrs.dryRun;
  request.options = attrs.options;
  return { kind: 'AdmissionReview', apiVersion, request };
}

interface Target {
  display: string;
  host: string;
  port: number;
  path: string;
  servername?: string;
}

function webhookTarget(hook: Webhook, timeoutSeconds: number, resolver: WebhookServiceResolver | undefined): Target {
  const config = hook.clientConfig ?? {};
  const query = `timeout=${timeoutSeconds}s`;
  if (config.url) {
    const url = new URL(config.url);
    url.search = url.search ? `${url.search}&${query}` : `?${query}`;
    return {
      display: url.toString(),
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 443),
      path: url.pathname + url.search,
    };
  }
  const service = config.service;
  if (!service) throw new Error('webhook has no clientConfig.url or clientConfig.service');
  const port = service.port ?? 443;
  const dnsName = `${service.name}.${service.namespace}.svc`;
  const path = `${service.path ?? '/'}?${query}`;
  const display = `https://${dnsName}:${port}${path}`;
  const resolved = resolver?.(service.namespace, service.name, port);
  if (!resolved) throw new WebhookCallError(`Post "${display}": service "${service.name}" not found`);
  return { display, host: resolved.host, port: resolved.port, path, servername: dnsName };
}

class WebhookCallError extends Error {}

/** Node's TLS/socket errors reworded the way Go's net/http reports them. */
function goStyleError(err: NodeJS.ErrnoException, target: Target): string {
  switch (err.code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_GET_ISSUER_CERT':
      return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `tls: failed to verify certificate: x509: certificate is not valid for ${target.servername ?? target.host}`;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ECONNREFUSED':
      return `dial tcp ${target.host}:${target.port}: connect: connection refused`;
    case 'ECONNRESET':
      return 'read: connection reset by peer';
    default:
      return err.message;
  }
}

// Connections to webhooks are kept and reused, as kube-apiserver's cached webhook clients do (a
// new TLS handshake per call would cost both sides far more than the call). The agent's pool is
// keyed by host, port, CA and server name, so a changed caBundle gets new connections; idle
// sockets do not keep the process alive (Node unrefs them) and are closed before the server's
// announced keep-alive timeout.
const webhookAgent = new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });

/** Connection-level failures of a reused keep-alive socket the server had already closed: safe to send again. */
const STALE_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

async function postReview(
  hook: Webhook,
  review: unknown,
  resolver: WebhookServiceResolver | undefined,
): Promise<Record<string, unknown>> {
  const timeoutSeconds = hook.timeoutSeconds ?? 10;
  const target = webhookTarget(hook, timeoutSeconds, resolver);
  const caBundle = hook.clientConfig?.caBundle;
  const ca = caBundle ? Buffer.from(caBundle, 'base64').toString('utf8') : undefined;
  const body = JSON.stringify(review);
  const deadlineAt = Date.now() + timeoutSeconds * 1000;
  const send = (retryStale: boolean): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const fail = (message: string) => reject(new WebhookCallError(`Post "${target.display}": ${message}`));
      const remainingMs = Math.max(1, deadlineAt - Date.now());
      const req = https.request(
        {
          host: target.host,
          port: target.port,
          path: target.path,
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            Accept: 'application/json, */*',
            'Content-Length': Buffer.byteLength(body),
          },
          // No caBundle: the system roots, as the real server does.
          ...(ca ? { ca } : {}),
          ...(target.servername ? { servername: target.servername } : {}),
          agent: webhookAgent,
          timeout: remainingMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => fail(err.message));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) {
              reject(
                new WebhookCallError(
                  `received invalid webhook response: the server responded with the status code ${res.statusCode} ${text ? `and body ${text.slice(0, 200)}` : 'but did not return more information'}`,
                ),
              );
              return;
            }
            try {
              resolve(JSON.parse(text) as Record<string, unknown>);
            } catch {
              reject(
                new WebhookCallError(
                  `received invalid webhook response: could not decode AdmissionReview: ${text.slice(0, 200)}`,
                ),
              );
            }
          });
        },
      );
      let timedOut = false;
      const timeOut = () => {
        timedOut = true;
        req.destroy();
        fail('context deadline exceeded');
      };
      const deadline = setTimeout(timeOut, remainingMs);
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', timeOut);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!timedOut && retryStale && req.reusedSocket && STALE_SOCKET_ERRORS.has(err.code ?? '')) {
          clearTimeout(deadline);
          send(false).then(resolve, reject);
          return;
        }
        fail(goStyleError(err, target));
      });
      req.end(body);
    });
  return send(true);
}

/** metav1.Status of a denial, as webhook/errors.ToStatusErr builds it. */
function denialStatus(name: string, result: Partial<StatusBody> | undefined): StatusBody {
  const deniedBy = `admission webhook "${name}" denied the request`;
  const code = typeof result?.code === 'number' && result.code >= 400 ? result.code : 400;
  let message: string;
  if (result?.message) message = `${deniedBy}: ${result.message}`;
  else if (result?.reason) message = `${deniedBy}: ${result.reason}`;
  else message = `${deniedBy} without explanation`;
  const status = statusBody(code, result?.reason ?? '', message, result?.details);
  if (!status.reason) delete status.reason;
  return status;
}

function reviewVersion(hook: Webhook): string {
  const versions = hook.admissionReviewVersions ?? ['v1'];
  if (versions.includes('v1')) return 'admission.k8s.io/v1';
  if (versions.includes('v1beta1')) return 'admission.k8s.io/v1beta1';
  throw new WebhookCallError(
    `webhook does not accept v1 or v1beta1 AdmissionReview (admissionReviewVersions: ${JSON.stringify(versions)})`,
  );
}

async function callWebhook(
  hook: Webhook,
  attrs: AdmissionAttributes,
  mutating: boolean,
  resolver: WebhookServiceResolver | undefined,
): Promise<{ object: KubeObject | null; warnings: string[] }> {
  if (attrs.dryRun && hook.sideEffects !== 'None' && hook.sideEffects !== 'NoneOnDryRun') {
    throw apiError(400, 'BadRequest', `admission webhook "${hook.name}" does not support dry run`);
  }
  try {
    const uid = randomUUID();
    const review = await postReview(hook, buildReview(attrs, uid, reviewVersion(hook)), resolver);
    const response = review.response as Record<string, unknown> | undefined;
    if (!response) throw new WebhookCallError('received invalid webhook response: response is missing');
    if (response.uid !== uid) {
      throw new WebhookCallError(`expected response.uid="${uid}", got "${String(response.uid ?? '')}"`);
    }
    const warnings = Array.isArray(response.warnings) ? response.warnings.map(String) : [];
    if (response.allowed !== true) {
      throw new ApiError(denialStatus(hook.name, response.status as Partial<StatusBody> | undefined));
    }
    let object = attrs.object;
    if (response.patch !== undefined && response.patch !== null) {
      if (!mutating) throw new WebhookCallError('validating webhooks may not return patches');
      if (response.patchType !== 'JSONPatch') {
        throw new WebhookCallError(`unsupported patch type "${String(response.patchType)}"`);
      }
      if (attrs.operation === 'DELETE' || attrs.operation === 'CONNECT') {
        throw new WebhookCallError(`webhook "${hook.name}" may not patch a ${attrs.operation} request`);
      }
      const ops = JSON.parse(Buffer.from(String(response.patch), 'base64').toString('utf8')) as unknown;
      object = applyJsonPatch(object, ops) as KubeObject;
    }
    return { object, warnings };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if ((hook.failurePolicy ?? 'Fail') === 'Ignore') return { object: attrs.object, warnings: [] };
    const message =
      err instanceof WebhookCallError ? `failed to call webhook: ${err.message}` : `${(err as Error).message}`;
    throw internalError(`failed calling webhook "${hook.name}": ${message}`);
  }
}

function configurations(store: Store, type: ResourceType): Array<{ name: string; webhooks: Webhook[] }> {
  return store
    .list(type)
    .items.map((c) => ({ name: c.metadata.name, webhooks: (c.webhooks as Webhook[] | undefined) ?? [] }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Runs mutating then validating admission webhooks; returns the admitted object and the warnings. */
export async function admit(
  store: Store,
  attrs: AdmissionAttributes,
  resolver: WebhookServiceResolver | undefined,
): Promise<AdmissionOutcome> {
  if (EXEMPT_GROUPS.has(attrs.type.group)) return { object: attrs.object, warnings: [] };
  const warnings: string[] = [];
  let current: AdmissionAttributes = attrs;
  for (const config of configurations(store, RESOURCES.mutatingwebhookconfigurations)) {
    for (const hook of config.webhooks) {
      if (!webhookMatches(store, hook, current)) continue;
      const result = await callWebhook(hook, current, true, resolver);
      warnings.push(...result.warnings);
      current = { ...current, object: result.object };
    }
  }
  const validating: Webhook[] = [];
  for (const config of configurations(store, RESOURCES.validatingwebhookconfigurations)) {
    for (const hook of config.webhooks) if (webhookMatches(store, hook, current)) validating.push(hook);
  }
  const results = await Promise.all(validating.map((hook) => callWebhook(hook, current, false, resolver)));
  for (const result of results) warnings.push(...result.warnings);
  return { object: current.object, warnings };
}
