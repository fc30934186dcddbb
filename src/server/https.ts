// HTTPS for the webhook: certificate files, TLS 1.2 minimum, and certificate rotation without a
// restart (setSecureContext keeps existing connections, new handshakes use the new pair).
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

export interface HttpsServerOptions {
  certFile: string;
  keyFile: string;
  /** 0 picks a free port. */
  port: number;
  host?: string;
}

export interface RunningHttpsServer {
  server: https.Server;
  port: number;
  host: string;
  /** Re-reads certFile and keyFile; a bad pair throws and the old certificate stays in use. */
  reloadCertificate(): Promise<void>;
  close(): Promise<void>;
}

async function readPair(options: HttpsServerOptions): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readFile(options.certFile), readFile(options.keyFile)]);
  return { cert, key };
}

export async function startHttpsServer(app: RequestListener, options: HttpsServerOptions): Promise<RunningHttpsServer> {
  const pair = await readPair(options);
  const server = https.createServer({ ...pair, minVersion: 'TLSv1.2' }, app);
  // The API server calls the webhook with a short timeout (default 10 s): do not hold sockets longer.
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 60_000;
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    host,
    async reloadCertificate() {
      const next = await readPair(options);
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
