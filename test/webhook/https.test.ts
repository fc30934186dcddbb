import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { createAdmissionApp } from '../../src/webhook/app.js';
import { startHttpsServer, type RunningHttpsServer } from '../../src/webhook/https.js';

const dir = mkdtempSync(join(tmpdir(), 'adg-tls-'));

function selfSigned(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

interface Answer {
  status: number;
  body: string;
  peer: string;
  localPort: number;
}

function post(port: string | number, ca: string, body: string, agent: https.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let data = '';
        const socket = res.socket as tls.TLSSocket;
        res.on('data', (c) => (data += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: data,
            peer: socket.getPeerCertificate().subject?.CN as string,
            localPort: socket.localPort ?? -1,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('startHttpsServer', () => {
  let running: RunningHttpsServer;
  const first = selfSigned('first');
  const second = selfSigned('second');
  const review = readFileSync(
    new URL('../fixtures/admission/helm-pre-upgrade-migration-job-3.0.2.json', import.meta.url),
    'utf8',
  );

  beforeAll(async () => {
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({ runningVersion: '3.1.0' }) });
    running = await startHttpsServer(app, { certificate: first, port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await running?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers AdmissionReview over TLS; a new certificate is served to new connections while open keep-alive connections carry on', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let handshakes = 0;
      const count = (): void => void handshakes++;
      running.server.on('secureConnection', count);
      const before = await post(running.port, first.cert, review, agent);
      expect(before.status).toBe(200);
      expect(before.peer).toBe('first');
      expect(JSON.parse(before.body).response).toMatchObject({
        uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000002',
        allowed: true,
        patchType: 'JSONPatch',
      });

      running.setCertificate(second);

      // The open connection is reused (same local port, no new handshake) and still answers.
      const reused = await post(running.port, first.cert, review, agent);
      expect(reused.status).toBe(200);
      expect(reused.localPort).toBe(before.localPort);
      expect(handshakes).toBe(1);
      const fresh = await post(running.port, second.cert, review);
      expect(fresh.peer).toBe('second');
      expect(handshakes).toBe(2);
      running.server.off('secureConnection', count);
    } finally {
      agent.destroy();
    }
  });

  it('keeps the current certificate when the new pair is bad', async () => {
    expect(() => running.setCertificate({ cert: second.cert, key: first.key })).toThrow();
    expect(() => running.setCertificate({ cert: 'not a certificate', key: second.key })).toThrow();
    const res = await post(running.port, second.cert, '{}');
    expect(res.status).toBe(400);
    expect(res.peer).toBe('second');
  });

  it('refuses TLS 1.1, also after a renewal', async () => {
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: running.port,
        rejectUnauthorized: false,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
      });
      socket.on('secureConnect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.on('error', (e) => resolve(e));
    });
    expect(error).toBeDefined();
  });
});
