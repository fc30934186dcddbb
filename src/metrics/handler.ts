// GET /metrics for express: a text exposition with its content type, or 500 with the reason.
import type { Request, RequestHandler, Response } from 'express';
import type { Registry } from 'prom-client';

export interface Exposition {
  text: string;
  contentType: string;
}

/** What a registry exposes now (the main thread's; the admission worker asks it by message). */
export function registryExposition(registry: Registry): () => Promise<Exposition> {
  return async () => ({ text: await registry.metrics(), contentType: registry.contentType });
}

export function metricsHandler(collect: () => Promise<Exposition>): RequestHandler {
  return async (_request: Request, response: Response) => {
    try {
      const { text, contentType } = await collect();
      response.status(200).set('Content-Type', contentType).send(text);
    } catch (error) {
      response
        .status(500)
        .type('text/plain')
        .send(`cannot collect metrics: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
}
