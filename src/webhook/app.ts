// The admission webhook's HTTP app: POST /mutate answers AdmissionReview v1 from the pure core;
// /healthz, /readyz and (when given) /metrics for probes and scraping. Bad bodies get a clear 4xx
// and the server keeps serving.
//
// The app is a plain Node request listener: POST /mutate, the one path every admission request of
// the cluster takes, goes straight to its handler (admission-handler.ts); every other request is
// handed to an express app, called as the request handler it is. Express answers what it does not
// route with a JSON 404, and errors with the same {"error": …} body /mutate uses.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { RequestListener } from 'node:http';
import type { GuardConfig } from '../core/config.js';
import type { ReleaseState } from '../core/decide.js';
import { metricsHandler, type Exposition } from '../metrics/handler.js';
import { createMutateHandler, isMutateRequest, reject, sendJson, type DecisionRecord } from './admission-handler.js';
import { silentLogger, type Logger } from '../log/logger.js';

export { BODY_LIMIT_BYTES, type DecisionRecord } from './admission-handler.js';

export type Readiness = boolean | { ready: boolean; reason?: string };

export interface AdmissionAppOptions {
  config: GuardConfig;
  releaseState: (namespace: string, release: string) => ReleaseState;
  onDecision?: (record: DecisionRecord) => void;
  logger?: Logger;
  /** Readiness delegate (e.g. caches warmed up); ready when omitted. */
  ready?: () => Readiness;
  /** Serves GET /metrics with what this returns; no /metrics route when omitted. */
  metrics?: () => Promise<Exposition>;
}

/** What an HTTP(S) server is created with: `https.createServer(options, app)`. */
export type AdmissionApp = RequestListener;

export function createAdmissionApp(options: AdmissionAppOptions): AdmissionApp {
  const logger = options.logger ?? silentLogger();
  const mutate = createMutateHandler({
    config: options.config,
    releaseState: options.releaseState,
    logger,
    ...(options.onDecision ? { onDecision: options.onDecision } : {}),
  });
  const routes = probeRoutes(options, logger);
  return (req, res) => {
    if (isMutateRequest(req)) mutate(req, res);
    else routes(req, res);
  };
}

function probeRoutes(options: AdmissionAppOptions, logger: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const readiness = readinessOf(options.ready, logger);
    if (readiness.ready) res.type('text/plain').send('ok');
    else
      res
        .status(503)
        .type('text/plain')
        .send(`not ready${readiness.reason ? `: ${readiness.reason}` : ''}`);
  });
  if (options.metrics) app.get('/metrics', metricsHandler(options.metrics));
  const notFound = JSON.stringify({
    error: `not found: the webhook serves POST /mutate, GET /healthz, GET /readyz${options.metrics ? ' and GET /metrics' : ''}`,
  });
  app.use((_req: Request, res: Response) => {
    sendJson(res, 404, notFound);
  });
  // Express knows an error handler by its four parameters.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    reject(res, error, logger);
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
