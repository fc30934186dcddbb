// The admission webhook's HTTP app: POST /mutate answers AdmissionReview v1 from the pure core;
// /healthz and /readyz for probes. Bad bodies get a clear 4xx and the server keeps serving.
//
// POST /mutate is served by a plain request handler (admission-handler.ts) before express sees the
// request: it is the one path every admission request of the cluster takes. Everything else goes
// through express, so routes added to the returned app later (e.g. /metrics) work as usual; a
// request no route answers gets a JSON 404.
import express from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GuardConfig } from '../core/config.js';
import type { ReleaseState } from '../core/decide.js';
import { createMutateHandler, isMutateRequest, reject, sendJson, type DecisionRecord } from './admission-handler.js';
import { silentLogger, type Logger } from './logger.js';

export { BODY_LIMIT_BYTES, type DecisionRecord } from './admission-handler.js';

export type Readiness = boolean | { ready: boolean; reason?: string };

export interface AdmissionAppOptions {
  config: GuardConfig;
  releaseState: (namespace: string, release: string) => ReleaseState;
  onDecision?: (record: DecisionRecord) => void;
  logger?: Logger;
  /** Readiness delegate (e.g. caches warmed up); ready when omitted. */
  ready?: () => Readiness;
}

type Handle = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

const NOT_FOUND = JSON.stringify({ error: 'not found: the webhook serves POST /mutate, GET /healthz and GET /readyz' });

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

  const mutate = createMutateHandler({ config: options.config, releaseState: options.releaseState, logger, ...(options.onDecision ? { onDecision: options.onDecision } : {}) });
  // An express app is a function that calls app.handle(req, res, next): intercept /mutate there,
  // and give express a final handler that answers in JSON instead of its HTML pages.
  const target = app as unknown as { handle: Handle };
  const route = target.handle.bind(app);
  target.handle = (req, res, next) => {
    if (isMutateRequest(req)) mutate(req, res);
    else route(req, res, next ?? finalHandler(req, res, logger));
  };
  return app;
}

/** What express falls through to: 404 when no route matched, the error's status otherwise. */
function finalHandler(_req: IncomingMessage, res: ServerResponse, logger: Logger): (error?: unknown) => void {
  return (error) => {
    if (error === undefined || error === null || error === 'route' || error === 'router') sendJson(res, 404, NOT_FOUND);
    else reject(res, error, logger);
  };
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
