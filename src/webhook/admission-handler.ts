// The webhook's hot path, POST /mutate, as a plain Node request handler: every admission request
// of the cluster passes through it, so it reads the body itself (Buffer chunks with a byte cap, one
// JSON.parse), decides, and writes the response with writeHead/end — no framework, body parser or
// per-request objects that nothing reads. Routine decisions are logged at debug; they are still
// counted in metrics and audited through onDecision.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { AdmissionReviewError } from '../core/admission.js';
import type { GuardConfig } from '../core/config.js';
import type { Decision, DecisionKind, ReleaseState, SideEffect, VersionPoint } from '../core/decide.js';
import { reviewAdmission, type ReviewResult } from '../core/review.js';
import type { Logger } from '../log/logger.js';

/** Kubernetes objects are at most 1.5 MiB in etcd; a review carries object and oldObject. */
export const BODY_LIMIT_BYTES = 3 * 1024 * 1024;

/** Everything an audit record of one admission decision needs. */
export interface DecisionRecord {
  uid: string;
  user: string;
  groups: string[];
  operation: string;
  namespace: string;
  kind: string;
  name: string;
  release?: string;
  component?: string;
  from?: VersionPoint;
  to?: VersionPoint;
  decision: DecisionKind;
  allowed: boolean;
  reason: string;
  sideEffect: SideEffect;
  operationId?: string;
  patch: { operations: number; paths: string[] };
  warnings: string[];
  dryRun: boolean;
  latencyMs: number;
  /** The full decision (hold record, plan) for the coordinator. */
  details: Decision;
  /** The AdmissionReview as received: `review --file` accepts a record holding it (see review command). */
  admissionReview: unknown;
}

export interface MutateHandlerOptions {
  config: GuardConfig;
  releaseState: (namespace: string, release: string) => ReleaseState;
  onDecision?: (record: DecisionRecord) => void;
  logger: Logger;
}

export type MutateHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** An answer other than a review response: status and a one-line reason, sent as {"error": …}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

class ReleaseStateUnavailable extends Error {}

// Decisions that happen all day (every pod-less Deployment edit, every scale, every upgrade): debug.
// What an operator must see — holds, joins, cancels, denials, unknown versions, break-glass — stays info.
const ROUTINE_DECISIONS: ReadonlySet<DecisionKind> = new Set<DecisionKind>([
  'pass-through',
  'no-version-change',
  'same-head',
  'forward',
  'trusted-user',
]);

const JSON_HEADERS = 'application/json; charset=utf-8';

/** POST /mutate (with or without the API server's ?timeout= query). */
export function isMutateRequest(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return req.method === 'POST' && (url === '/mutate' || url.startsWith('/mutate?'));
}

export function createMutateHandler(options: MutateHandlerOptions): MutateHandler {
  const lookup = stateLookup(options.releaseState);
  return (req, res) => {
    const unsupported = unsupportedBody(req);
    if (unsupported) {
      // Answered without reading the body: Node discards the rest so the connection stays usable.
      reject(res, unsupported, options.logger);
      return;
    }
    readBody(req, BODY_LIMIT_BYTES, (error, body) => {
      if (error) reject(res, error, options.logger);
      else answer(res, body!, lookup, options);
    });
  };
}

function answer(
  res: ServerResponse,
  body: Buffer,
  lookup: MutateHandlerOptions['releaseState'],
  options: MutateHandlerOptions,
): void {
  let review: unknown;
  try {
    review = parseJson(body);
  } catch (error) {
    reject(res, error, options.logger);
    return;
  }
  const started = performance.now();
  let result: ReviewResult;
  try {
    result = reviewAdmission(review, lookup, options.config);
  } catch (error) {
    reject(res, error instanceof AdmissionReviewError ? new HttpError(400, error.message) : error, options.logger);
    return;
  }
  sendJson(res, 200, JSON.stringify(result.response));
  const latencyMs = performance.now() - started;
  logDecision(options.logger, result, latencyMs);
  if (options.onDecision) notify(options.onDecision, result, review, latencyMs, options.logger);
}

/** 415 for a body the handler cannot read as JSON, 413 for a declared length over the limit. */
function unsupportedBody(req: IncomingMessage): HttpError | undefined {
  const headers = req.headers;
  const hasBody = headers['transfer-encoding'] !== undefined || headers['content-length'] !== undefined;
  const type = headers['content-type'];
  if (!hasBody || type === undefined || !isJsonMediaType(type)) {
    return new HttpError(415, 'expected Content-Type application/json with an AdmissionReview');
  }
  const charset = charsetOf(type);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
    return new HttpError(415, `unsupported charset "${charset.toUpperCase()}"`);
  const encoding = (headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity') return new HttpError(415, `unsupported content encoding "${encoding}"`);
  const length = Number(headers['content-length']);
  if (length > BODY_LIMIT_BYTES) return tooLarge();
  return undefined;
}

/** application/json or application/<anything>+json, parameters ignored. */
function isJsonMediaType(header: string): boolean {
  const semicolon = header.indexOf(';');
  const type = (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function charsetOf(header: string): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(header);
  return m ? (m[1] as string).toLowerCase() : undefined;
}

function tooLarge(): HttpError {
  return new HttpError(413, `AdmissionReview larger than the ${BODY_LIMIT_BYTES} byte limit`);
}

/**
 * Collects the body as Buffers up to `limit` bytes. Past the limit it keeps reading and discards
 * (so the client, still sending, gets to read the 413), bounded by the server's request timeout.
 */
function readBody(
  req: IncomingMessage,
  limit: number,
  done: (error: HttpError | undefined, body?: Buffer) => void,
): void {
  let chunks: Buffer[] = [];
  let length = 0;
  let over = false;
  req.on('data', (chunk: Buffer) => {
    length += chunk.length;
    if (over) return;
    if (length > limit) {
      over = true;
      chunks = [];
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (over) done(tooLarge());
    else done(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
  });
  // A client that goes away mid-body: nothing to answer (and no unhandled 'error' event).
  req.on('error', () => {});
}

function parseJson(body: Buffer): unknown {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON: ${String((error as Error).message).split('\n')[0]}`);
  }
}

/** A failing state lookup must not be mistaken for "no state" (that would make every CREATE an install). */
function stateLookup(lookup: MutateHandlerOptions['releaseState']): MutateHandlerOptions['releaseState'] {
  return (namespace, release) => {
    try {
      return lookup(namespace, release);
    } catch (error) {
      throw new ReleaseStateUnavailable(
        `release state of ${namespace}/${release} unavailable: ${(error as Error).message}`,
      );
    }
  };
}

/** The status and message an error is answered with; anything unexpected is a 500 without details. */
export function describeError(error: unknown): { status: number; message: string } {
  if (error instanceof HttpError) return { status: error.status, message: error.message };
  if (error instanceof ReleaseStateUnavailable) return { status: 503, message: error.message };
  const e = error as { status?: number; message?: string } | undefined;
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500)
    return { status: e.status, message: String(e.message) };
  return { status: 500, message: 'internal error while deciding the admission request' };
}

/** Answers an error as {"error": message}, logging 5xx as errors and 4xx as warnings. */
export function reject(res: ServerResponse, error: unknown, logger: Logger): void {
  const { status, message } = describeError(error);
  if (status >= 500) logger.error({ err: error }, 'admission request failed');
  else logger.warn({ status, reason: message }, 'admission request rejected');
  sendJson(res, status, JSON.stringify({ error: message }));
}

export function sendJson(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': JSON_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function toRecord(result: ReviewResult, body: unknown, latencyMs: number): DecisionRecord {
  const { request, decision } = result;
  const record: DecisionRecord = {
    uid: request.uid,
    user: request.userInfo.username,
    groups: request.userInfo.groups,
    operation: request.operation,
    namespace: request.namespace,
    kind: request.kind.kind,
    name: decision.subject.name,
    decision: decision.kind,
    allowed: decision.allowed,
    reason: decision.reason,
    sideEffect: decision.sideEffect,
    patch: { operations: decision.patch.length, paths: decision.patch.map((op) => op.path) },
    warnings: result.response.response.warnings ?? [],
    dryRun: decision.dryRun,
    latencyMs: Math.round(latencyMs * 1000) / 1000,
    details: decision,
    admissionReview: body,
  };
  if (decision.subject.release !== undefined) record.release = decision.subject.release;
  if (decision.subject.component !== undefined) record.component = decision.subject.component;
  if (decision.from) record.from = decision.from;
  if (decision.to) record.to = decision.to;
  // A dry run opens no operation: the id it would have had belongs to no operation's timeline.
  if (decision.operation && !decision.dryRun) record.operationId = decision.operation.id;
  return record;
}

function notify(
  onDecision: (record: DecisionRecord) => void,
  result: ReviewResult,
  review: unknown,
  latencyMs: number,
  logger: Logger,
): void {
  try {
    onDecision(toRecord(result, review, latencyMs));
  } catch (error) {
    logger.error({ err: error, uid: result.request.uid }, 'onDecision callback failed');
  }
}

function logDecision(logger: Logger, { request, decision }: ReviewResult, latencyMs: number): void {
  const level = decision.allowed && ROUTINE_DECISIONS.has(decision.kind) ? 'debug' : 'info';
  // The line and its fields are built only when someone reads them.
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      uid: request.uid,
      user: request.userInfo.username,
      operation: request.operation,
      namespace: request.namespace,
      kind: request.kind.kind,
      name: decision.subject.name,
      release: decision.subject.release,
      decision: decision.kind,
      allowed: decision.allowed,
      dryRun: decision.dryRun,
      operationId: decision.dryRun ? undefined : decision.operation?.id,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
    },
    `admission ${decision.kind}: ${decision.reason}`,
  );
}
