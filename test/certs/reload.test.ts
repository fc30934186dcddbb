import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeCertificate, generateCa, issueServingCertificate } from '../../src/certs/generate.js';
import { applyServingCertificate, watchCertificateFiles } from '../../src/certs/reload.js';
import { closeServer, startHttpsServer, tlsGet } from './tls-helpers.js';

const ca = generateCa();
const issue = () => issueServingCertificate({ service: 'airflow-downgrade-guard', namespace: 'guard', dnsNames: ['localhost'], ca });

describe('reloading the serving certificate', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('serves the rotated certificate to new connections and keeps the open keep-alive connection', async () => {
    const first = issue();
    const second = issue();
    const { server, port } = await startHttpsServer(first);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => {
      agent.destroy();
      await closeServer(server);
    });
    let connections = 0;
    server.on('secureConnection', () => connections++);

    const before = await tlsGet({ port, ca: ca.cert, servername: 'localhost', agent });
    expect(before.peerFingerprint).toBe(describeCertificate(first.cert).fingerprint256);

    applyServingCertificate(server, second);

    // Same agent: the request reuses the open socket (same local port, no new handshake).
    const reused = await tlsGet({ port, ca: ca.cert, servername: 'localhost', agent });
    expect(reused.status).toBe(200);
    expect(reused.localPort).toBe(before.localPort);
    expect(reused.peerFingerprint).toBe(describeCertificate(first.cert).fingerprint256);
    expect(connections).toBe(1);

    const fresh = await tlsGet({ port, ca: ca.cert, servername: 'localhost' });
    expect(fresh.status).toBe(200);
    expect(fresh.peerFingerprint).toBe(describeCertificate(second.cert).fingerprint256);
    expect(connections).toBe(2);
  });

  it('files mode: notices a changed certificate file and hands the new pair over', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'adg-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
    const first = issue();
    await writeFile(files.certFile, first.cert);
    await writeFile(files.keyFile, first.key);
    const seen: string[] = [];
    const watcher = watchCertificateFiles(files, (pair) => seen.push(pair.cert), { intervalMs: 3_600_000 });
    cleanups.push(async () => watcher.stop());

    await watcher.check();
    await watcher.check();
    expect(seen).toEqual([first.cert]);
    const second = issue();
    await writeFile(files.certFile, second.cert);
    await writeFile(files.keyFile, second.key);
    await watcher.check();
    expect(seen).toEqual([first.cert, second.cert]);
  });
});
