// KubeRest on the wire: request bodies go out sized (Content-Length), never chunked. kube-apiserver
// 1.36 answers a DELETE with DeleteOptions early (404, 409) without reading a chunked body to its
// end; the next request on that kept-alive connection then got a plain "400 Bad Request".
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeRest } from '../../src/k8s/rest.js';

describe('KubeRest request bodies', () => {
  it('are sent with Content-Length, not chunked, for every method with a body', async () => {
    const seen: Array<{ method: string; headers: IncomingHttpHeaders; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', headers: req.headers, body });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      ],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const rest = new KubeRest(kc);
    try {
      const options = {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
        preconditions: { uid: 'é-uid' },
      };
      await rest.request('DELETE', '/api/v1/namespaces/a/pods/b', { body: options });
      await rest.request('PATCH', '/api/v1/namespaces/a/pods/b/status', {
        body: { status: { phase: 'Running' } },
        contentType: 'application/merge-patch+json',
      });
      await rest.request('GET', '/api/v1/namespaces');
    } finally {
      rest.close();
      await new Promise((resolve) => server.close(resolve));
    }
    const [del, patch, get] = seen;
    for (const request of [del!, patch!]) {
      expect(request.headers['transfer-encoding'], request.method).toBeUndefined();
      expect(Number(request.headers['content-length']), request.method).toBe(Buffer.byteLength(request.body));
    }
    expect(JSON.parse(del!.body)).toMatchObject({ preconditions: { uid: 'é-uid' } });
    expect(get!.headers['content-length']).toBeUndefined();
  });
});
