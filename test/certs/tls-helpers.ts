import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export async function startHttpsServer(pair: {
  cert: string;
  key: string;
}): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer({ cert: pair.cert, key: pair.key, keepAlive: true }, (req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`ok ${req.socket.remotePort}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

export interface TlsGetResult {
  status: number;
  body: string;
  peerFingerprint: string;
  localPort: number;
}

/**
 * GET https://127.0.0.1:port with a CA-only trust store. With servername, the certificate is
 * checked against that DNS name (SNI); without, against the IP 127.0.0.1.
 */
export function tlsGet(options: {
  port: number;
  ca: string;
  servername?: string;
  agent?: https.Agent | false;
  path?: string;
}): Promise<TlsGetResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path ?? '/',
        ca: options.ca,
        ...(options.servername !== undefined ? { servername: options.servername } : {}),
        agent: options.agent ?? false,
        rejectUnauthorized: true,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peerFingerprint = socket.getPeerCertificate().fingerprint256;
        const localPort = socket.localPort ?? -1;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerFingerprint, localPort }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function closeServer(server: https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
