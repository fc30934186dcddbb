// Hostile HTTP against the real webhook server (startHttpsServer + createAdmissionApp): slow
// bodies and headers (slow-loris), sockets that never handshake, plain-HTTP clients, TLS 1.0/1.1,
// connection floods. Throughout, /healthz keeps answering.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { createAdmissionApp } from '../../src/webhook/app.js';
import { DEFAULT_HTTPS_LIMITS, startHttpsServer, type RunningHttpsServer } from '../../src/webhook/https.js';
import { versionChange } from '../fixtures/admission/builders.js';
import { saveCounts } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'adg-faults-tls-'));
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
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
    '/CN=guard',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ],
  { stdio: 'ignore' },
);
const ca = readFileSync(certFile, 'utf8');

const LIMITS = {
  headersTimeoutMs: 1000,
  requestTimeoutMs: 1500,
  handshakeTimeoutMs: 1000,
  keepAliveTimeoutMs: 5000,
  maxConnections: 400,
};
let server: RunningHttpsServer;
const counts: Record<string, number> = {};

beforeAll(async () => {
  const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({ runningVersion: '3.1.0' }) });
  server = await startHttpsServer(app, {
    certificate: { cert: ca, key: readFileSync(keyFile, 'utf8') },
    port: 0,
    host: '127.0.0.1',
    limits: LIMITS,
  });
});
afterAll(async () => {
  await server.close();
  saveCounts('http-hostile', counts);
  rmSync(dir, { recursive: true, force: true });
});

function health(timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port: server.port, path: '/healthz', ca, agent: false, timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('health timed out')));
    req.on('error', reject);
  });
}

/** Polls /healthz every 100 ms while `during` runs; every probe must answer 200 within 2 s. */
async function healthyThroughout<T>(during: () => Promise<T>): Promise<T> {
  let stop = false;
  let probes = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (!stop) {
      await health().then(
        (code) => (code === 200 ? probes++ : failures.push(`status ${code}`)),
        (e: Error) => failures.push(e.message),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    return await during();
  } finally {
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect(probes).toBeGreaterThan(0);
    counts['health probes answered during attacks'] = (counts['health probes answered during attacks'] ?? 0) + probes;
  }
}

function tlsSocket(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, ca }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves with what the server sent and how long until it closed the socket. */
function untilClosed(socket: net.Socket): Promise<{ ms: number; data: string }> {
  const started = Date.now();
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
  return new Promise((resolve) => {
    socket.on('close', () => resolve({ ms: Date.now() - started, data }));
    socket.on('error', () => undefined);
  });
}

describe('hostile HTTP clients', () => {
  it('defaults bound every phase of a request', () => {
    expect(DEFAULT_HTTPS_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(15_000);
    expect(DEFAULT_HTTPS_LIMITS.requestTimeoutMs).toBeLessThanOrEqual(30_000);
    expect(DEFAULT_HTTPS_LIMITS.handshakeTimeoutMs).toBeLessThanOrEqual(10_000);
    expect(server.server.maxConnections).toBe(LIMITS.maxConnections);
  });

  it('slow body (1 byte / 200 ms): cut off at the request timeout', async () => {
    await healthyThroughout(async () => {
      const sockets = await Promise.all(Array.from({ length: 20 }, () => tlsSocket()));
      const closed = sockets.map((s) => untilClosed(s));
      const body = JSON.stringify(versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2'));
      for (const s of sockets)
        s.write(
          `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
      let i = 0;
      const drip = setInterval(() => {
        for (const s of sockets) if (!s.destroyed) s.write(body[i] ?? ' ');
        i++;
      }, 200);
      const results = await Promise.all(closed);
      clearInterval(drip);
      for (const r of results) {
        expect(r.ms).toBeLessThan(LIMITS.requestTimeoutMs + 2000);
        if (r.data) expect(r.data).toMatch(/^HTTP\/1\.1 408/);
      }
      counts['slow-body connections cut off'] = results.length;
    });
  });

  it('slow headers: cut off at the headers timeout', async () => {
    await healthyThroughout(async () => {
      const sockets = await Promise.all(Array.from({ length: 20 }, () => tlsSocket()));
      const closed = sockets.map((s) => untilClosed(s));
      for (const s of sockets) s.write('GET /healthz HTTP/1.1\r\n');
      const drip = setInterval(() => sockets.forEach((s) => !s.destroyed && s.write('X-Slow: 1\r\n')), 150);
      const results = await Promise.all(closed);
      clearInterval(drip);
      for (const r of results) expect(r.ms).toBeLessThan(LIMITS.headersTimeoutMs + 2000);
      counts['slow-header connections cut off'] = results.length;
    });
  });

  it('sockets that never start TLS are dropped after the handshake timeout', async () => {
    await healthyThroughout(async () => {
      const sockets = Array.from({ length: 30 }, () => net.connect({ host: '127.0.0.1', port: server.port }));
      const results = await Promise.all(sockets.map((s) => untilClosed(s)));
      for (const r of results) expect(r.ms).toBeLessThan(LIMITS.handshakeTimeoutMs + 2000);
      counts['silent TCP connections dropped'] = results.length;
    });
  });

  it('a plain-HTTP client gets no answer over cleartext and the server carries on', async () => {
    await healthyThroughout(async () => {
      const s = net.connect({ host: '127.0.0.1', port: server.port });
      const closed = untilClosed(s);
      s.write('POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      const r = await closed;
      expect(r.data).not.toMatch(/AdmissionReview|allowed/);
      expect(r.ms).toBeLessThan(LIMITS.handshakeTimeoutMs + 2000);
    });
  });

  it.each([
    ['TLSv1', 'TLSv1'],
    ['TLSv1.1', 'TLSv1.1'],
  ] as const)('%s is refused', async (min, max) => {
    const error = await new Promise<Error | undefined>((resolve) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: server.port, ca, minVersion: min, maxVersion: max, ciphers: 'DEFAULT@SECLEVEL=0' },
        () => {
          s.end();
          resolve(undefined);
        },
      );
      s.on('error', (e) => resolve(e));
    });
    expect(error).toBeInstanceOf(Error);
  });

  it.each(['TLSv1.2', 'TLSv1.3'] as const)('%s is accepted', async (version) => {
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: server.port, ca, minVersion: version, maxVersion: version },
        () => {
          resolve(s.getProtocol());
          s.end();
        },
      );
      s.on('error', reject);
    });
    expect(protocol).toBe(version);
  });

  it('300 idle TLS connections: health still answers; beyond maxConnections new ones are refused, then service resumes', async () => {
    // A server of its own whose timeouts do not close the idle connections while the test fills up
    // to the limit (opening 400 connections takes longer than the short timeouts on a busy machine).
    const shared = server;
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({ runningVersion: '3.1.0' }) });
    const patient = {
      ...LIMITS,
      headersTimeoutMs: 120_000,
      requestTimeoutMs: 120_000,
      handshakeTimeoutMs: 120_000,
      keepAliveTimeoutMs: 120_000,
    };
    server = await startHttpsServer(app, {
      certificate: { cert: ca, key: readFileSync(keyFile, 'utf8') },
      port: 0,
      host: '127.0.0.1',
      limits: patient,
    });
    try {
      await idleConnectionsThenLimit();
    } finally {
      await server.close();
      server = shared;
    }
  });
});

async function idleConnectionsThenLimit(): Promise<void> {
  const idle = await healthyThroughout(async () => Promise.all(Array.from({ length: 300 }, () => tlsSocket())));
  counts['idle TLS connections held'] = idle.length;
  // Fill up to the limit with plain sockets, then one more is refused.
  const filler = Array.from({ length: LIMITS.maxConnections - 300 + 20 }, () =>
    net.connect({ host: '127.0.0.1', port: server.port }),
  );
  const open = (): Promise<number> => new Promise((resolve) => server.server.getConnections((_e, n) => resolve(n)));
  const deadline = Date.now() + 30_000;
  while ((await open()) < LIMITS.maxConnections && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(await open()).toBe(LIMITS.maxConnections);
  const refused = await health(1000).then(
    () => false,
    () => true,
  );
  expect(refused).toBe(true);
  for (const s of [...idle, ...filler]) s.destroy();
  // Service resumes once the server has seen the connections go.
  while ((await open()) >= LIMITS.maxConnections && Date.now() < deadline + 30_000)
    await new Promise((r) => setTimeout(r, 50));
  expect(await health()).toBe(200);
}
