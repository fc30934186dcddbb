// HTTPS for the webhook: TLS 1.2 minimum, and a renewed certificate served without a restart
// (setSecureContext: connections already open keep their session, new handshakes use the new pair).
// Where the pair comes from, and when it is renewed, is the certificate source's business
// (src/certs/source.ts).
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import type { ServingPair } from '../certs/source.js';

export interface HttpsServerOptions {
  certificate: ServingPair;
  /** 0 picks a free port. */
  port: number;
  host?: string;
  /** Limits against slow or idle clients (slow-loris, handshake-less sockets, connection floods). */
  limits?: Partial<HttpsLimits>;
}

export interface HttpsLimits {
  /** Time to receive all request headers. */
  headersTimeoutMs: number;
  /** Time to receive the whole request, body included. */
  requestTimeoutMs: number;
  /** Time to complete the TLS handshake; a client that never speaks TLS is dropped after it. */
  handshakeTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this. */
  keepAliveTimeoutMs: number;
  /** Open connections beyond this are refused, so a flood cannot exhaust file descriptors. */
  maxConnections: number;
}

// The API server calls the webhook with a short timeout (at most 30 s, default 10 s): nothing
// legitimate needs longer than these.
export const DEFAULT_HTTPS_LIMITS: HttpsLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  keepAliveTimeoutMs: 60_000,
  maxConnections: 4096,
};

export interface RunningHttpsServer {
  server: https.Server;
  port: number;
  host: string;
  /** Serves this pair to new connections; a bad pair (unreadable, key not matching) throws and the old one stays in use. */
  setCertificate(pair: ServingPair): void;
  close(): Promise<void>;
}

/** The secure context of the server, at start and at every renewal alike. */
function secureContext(pair: ServingPair): SecureContextOptions {
  return { cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' };
}

export async function startHttpsServer(app: RequestListener, options: HttpsServerOptions): Promise<RunningHttpsServer> {
  const limits = { ...DEFAULT_HTTPS_LIMITS, ...options.limits };
  const server = https.createServer(
    {
      ...secureContext(options.certificate),
      handshakeTimeout: limits.handshakeTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node enforces the two timeouts above on this interval; keep it well under the shortest.
      connectionsCheckingInterval: Math.min(
        30_000,
        Math.max(100, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
      ),
    },
    app,
  );
  server.maxConnections = limits.maxConnections;
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
    setCertificate(pair) {
      server.setSecureContext(secureContext(pair));
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
