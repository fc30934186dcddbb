import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { createAdmissionApp } from '../../src/server/app.js';
import { startHttpsServer, type RunningHttpsServer } from '../../src/server/https.js';

const dir = mkdtempSync(join(tmpdir(), 'adg-tls-'));

function selfSigned(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

function post(port: string | number, ca: string, body: string): Promise<{ status: number; body: string; peer: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, peer: (res.socket as tls.TLSSocket).getPeerCertificate().subject?.CN as string }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('startHttpsServer', () => {
  let running: RunningHttpsServer;
  const first = selfSigned('first');
  const second = selfSigned('second');
  const live = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };

  beforeAll(async () => {
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({ runningVersion: '3.1.0' }) });
    running = await startHttpsServer(app, { certFile: live.cert, keyFile: live.key, port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await running?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers AdmissionReview over TLS and rotates its certificate', async () => {
    const review = readFileSync(new URL('../fixtures/admission/helm-pre-upgrade-migration-job-3.0.2.json', import.meta.url), 'utf8');
    const before = await post(running.port, readFileSync(first.cert, 'utf8'), review);
    expect(before.status).toBe(200);
    expect(before.peer).toBe('first');
    expect(JSON.parse(before.body).response).toMatchObject({ uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000002', allowed: true, patchType: 'JSONPatch' });

    writeFileSync(live.cert, readFileSync(second.cert));
    writeFileSync(live.key, readFileSync(second.key));
    await running.reloadCertificate();
    const after = await post(running.port, readFileSync(second.cert, 'utf8'), review);
    expect(after.peer).toBe('second');
  });

  it('keeps the old certificate when the new pair is bad', async () => {
    writeFileSync(live.key, readFileSync(first.key));
    await expect(running.reloadCertificate()).rejects.toThrow();
    writeFileSync(live.key, readFileSync(second.key));
    const res = await post(running.port, readFileSync(second.cert, 'utf8'), '{}');
    expect(res.status).toBe(400);
  });

  it('refuses TLS 1.1', async () => {
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: running.port, rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' });
      socket.on('secureConnect', () => { socket.destroy(); resolve(undefined); });
      socket.on('error', (e) => resolve(e));
    });
    expect(error).toBeDefined();
  });
});
