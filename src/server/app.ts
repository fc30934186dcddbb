// The admission webhook's HTTP app: POST /mutate answers AdmissionReview v1 from the pure core;
// /healthz and /readyz for probes. Bad bodies get a clear 4xx and the server keeps serving.
import express, { type NextFunction, type Request, type Response } from 'express';
import { performance } from 'node:perf_hooks';
import { AdmissionReviewError } from '../core/admission.js';
import type { GuardConfig } from '../core/config.js';
import type { Decision, DecisionKind, ReleaseState, SideEffect, VersionPoint } from '../core/decide.js';
import { reviewAdmission, type ReviewResult } from '../core/review.js';
import { silentLogger, type Logger } from './logger.js';

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

export type Readiness = boolean | { ready: boolean; reason?: string };

export interface AdmissionAppOptions {
  config: GuardConfig;
  releaseState: (namespace: string, release: string) => ReleaseState;
  onDecision?: (record: DecisionRecord) => void;
  logger?: Logger;
  /** Readiness delegate (e.g. caches warmed up); ready when omitted. */
  ready?: () => Readiness;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createAdmissionApp(options: AdmissionAppOptions): express.Express {
  const logger = options.logger ?? silentLogger();
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const readiness = readinessOf(options.ready, logger);
    if (readiness.ready) res.type('text/plain').send('ok');
    else res.status(503).type('text/plain').send(`not ready${readiness.reason ? `: ${readiness.reason}` : ''}`);
  });

  app.post(
    '/mutate',
    express.json({ limit: BODY_LIMIT_BYTES, type: ['application/json', 'application/*+json'], strict: true }),
    (req: Request, res: Response) => {
      const started = performance.now();
      if (req.body === undefined) throw new HttpError(415, 'expected Content-Type application/json with an AdmissionReview');
      let result: ReviewResult;
      try {
        result = reviewAdmission(req.body, stateLookup(options.releaseState), options.config);
      } catch (error) {
        if (error instanceof AdmissionReviewError) throw new HttpError(400, error.message);
        throw error;
      }
      res.json(result.response);
      const latencyMs = performance.now() - started;
      logDecision(logger, result, latencyMs);
      if (options.onDecision) notify(options.onDecision, toRecord(result, req.body, latencyMs), logger);
    },
  );

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found: the webhook serves POST /mutate, GET /healthz and GET /readyz' });
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const { status, message } = describeError(error);
    if (status >= 500) logger.error({ err: error }, 'admission request failed');
    else logger.warn({ status, reason: message }, 'admission request rejected');
    res.status(status).json({ error: message });
  });
  return app;
}

function readinessOf(ready: AdmissionAppOptions['ready'], logger: Logger): { ready: boolean; reason?: string } {
  if (!ready) return { ready: true };
  try {
    const r = ready();
    return typeof r === 'boolean' ? { ready: r } : r;
  } catch (error) {
    logger.error({ err: error }, 'readiness check failed');
    return { ready: false, reason: 'readiness check failed' };
  }
}

class ReleaseStateUnavailable extends Error {}

/** A failing state lookup must not be mistaken for "no state" (that would make every CREATE an install). */
function stateLookup(lookup: AdmissionAppOptions['releaseState']): AdmissionAppOptions['releaseState'] {
  return (namespace, release) => {
    try {
      return lookup(namespace, release);
    } catch (error) {
      throw new ReleaseStateUnavailable(`release state of ${namespace}/${release} unavailable: ${(error as Error).message}`);
    }
  };
}

function describeError(error: unknown): { status: number; message: string } {
  if (error instanceof HttpError) return { status: error.status, message: error.message };
  if (error instanceof ReleaseStateUnavailable) return { status: 503, message: error.message };
  const e = error as { type?: string; status?: number; limit?: number; message?: string };
  switch (e.type) {
    case 'entity.too.large':
      return { status: 413, message: `AdmissionReview larger than the ${BODY_LIMIT_BYTES} byte limit` };
    case 'entity.parse.failed':
      return { status: 400, message: `body is not valid JSON: ${String(e.message ?? '').split('\n')[0]}` };
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return { status: 415, message: String(e.message ?? 'unsupported encoding') };
    case 'request.aborted':
      return { status: 400, message: 'request aborted' };
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return { status: e.status, message: String(e.message) };
  return { status: 500, message: 'internal error while deciding the admission request' };
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
  if (decision.operation) record.operationId = decision.operation.id;
  return record;
}

function notify(onDecision: (record: DecisionRecord) => void, record: DecisionRecord, logger: Logger): void {
  try {
    onDecision(record);
  } catch (error) {
    logger.error({ err: error, uid: record.uid }, 'onDecision callback failed');
  }
}

function logDecision(logger: Logger, { request, decision }: ReviewResult, latencyMs: number): void {
  const level = decision.kind === 'pass-through' ? 'debug' : 'info';
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
      operationId: decision.operation?.id,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
    },
    `admission ${decision.kind}: ${decision.reason}`,
  );
}
