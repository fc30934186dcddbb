// GET /metrics for express: the registry's text exposition with its own content type.
import type { Request, RequestHandler, Response } from 'express';
import type { Registry } from 'prom-client';

export function metricsHandler(registry: Registry): RequestHandler {
  return async (_request: Request, response: Response) => {
    try {
      const body = await registry.metrics();
      response.status(200).set('Content-Type', registry.contentType).send(body);
    } catch (error) {
      response
        .status(500)
        .type('text/plain')
        .send(`cannot collect metrics: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
}
