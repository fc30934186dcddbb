// `serve` (the built CLI, as a subprocess, against the simulated API server) serves a renewed
// certificate without a restart and without dropping open keep-alive connections: in files mode
// (the files renewed on disk the way the kubelet renews a mounted Secret) and in self-managed mode
// (the Secret renewed, as another replica does).
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  describeCertificate,
  generateCa,
  issueServingCertificate,
  splitPemBundle,
  type PemPair,
} from '../../src/certs/generate.js';
import { certificatesFromSecret, type SecretObject } from '../../src/certs/rotation.js';
import { renderInstallManifests } from '../../src/install/manifests.js';
import { GUARD_NAME, TLS_SECRET_NAME } from '../../src/install/names.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { startSimCluster, type SimCluster } from '../../testbed/sim/cluster.js';
import { ROOT, spawnGuard, waitFor, type Guard } from '../e2e/harness.js';

const NAMESPACE = 'airflow-downgrade-guard';
/** The name the self-managed certificate is issued for (the webhook Service). */
const SERVICE_NAME = `${GUARD_NAME}.${NAMESPACE}.svc`;

let sim: SimCluster;
let admin: Cluster;
let dir: string;
let kubeconfig: string;
const guards: Guard[] = [];
const agents: https.Agent[] = [];

beforeAll(async () => {
  sim = await startSimCluster();
  const kc = new KubeConfig();
  kc.loadFromString(sim.api.kubeconfig());
  admin = new Cluster(new KubeRest(kc), { attempts: 3, baseDelayMs: 50 });
  await admin.create('Namespace', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
  dir = mkdtempSync(path.join(os.tmpdir(), 'adg-serve-certs-'));
  kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, sim.api.kubeconfig(), { mode: 0o600 });
  // Checked often, so a renewal shows within the test's patience.
  writeFileSync(path.join(dir, 'serve.yaml'), 'certificateCheckMs: 100\n');
});

afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  await Promise.all(guards.splice(0).map((g) => g.stop('SIGKILL')));
});

afterAll(async () => {
  await sim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function startServe(identity: string, args: string[]): Promise<Guard> {
  const cli = [
    path.join(ROOT, 'dist/src/cli/main.js'),
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--kubeconfig',
    kubeconfig,
    '--identity',
    identity,
    '--config',
    path.join(dir, 'serve.yaml'),
  ];
  return spawnGuard(identity, [...cli, ...args], {
    ...process.env,
    POD_NAMESPACE: NAMESPACE,
    ADG_LOG_LEVEL: 'info',
  }).then((guard) => {
    guards.push(guard);
    return guard;
  });
}

interface Served {
  status: number;
  fingerprint: string;
  localPort: number;
}

/** GET /healthz, trusting only `ca`; with an agent, over its open keep-alive connection when it has one. */
function healthz(
  port: number,
  ca: string,
  options: { servername?: string; agent?: https.Agent } = {},
): Promise<Served> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path: '/healthz',
        ca,
        agent: options.agent ?? false,
        ...(options.servername ? { servername: options.servername } : {}),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const served = {
          status: res.statusCode ?? 0,
          fingerprint: socket.getPeerCertificate().fingerprint256,
          localPort: socket.localPort ?? -1,
        };
        res.resume();
        res.on('end', () => resolve(served));
      },
    );
    req.on('error', reject);
  });
}

function keepAliveAgent(): https.Agent {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return agent;
}

const fingerprint = (pem: string): string => describeCertificate(pem).fingerprint256;

/**
 * Renews a mounted Secret the way the kubelet does (its atomic writer): the files live in a
 * timestamped directory, `..data` points at it, tls.crt/tls.key point through `..data`; a renewal
 * writes a new directory and swaps `..data` in one rename.
 */
function writeMountedSecret(mount: string, pair: PemPair, generation: number): void {
  const version = `..${generation}`;
  mkdirSync(path.join(mount, version));
  writeFileSync(path.join(mount, version, 'tls.crt'), pair.cert);
  writeFileSync(path.join(mount, version, 'tls.key'), pair.key, { mode: 0o600 });
  symlinkSync(version, path.join(mount, '..data_tmp'));
  renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
  if (generation === 1) {
    symlinkSync(path.join('..data', 'tls.crt'), path.join(mount, 'tls.crt'));
    symlinkSync(path.join('..data', 'tls.key'), path.join(mount, 'tls.key'));
  }
}

describe('serve reloads a renewed certificate without a restart', () => {
  it('files mode: the files renewed on disk are served to new connections; the open connection carries on', async () => {
    const ca = generateCa();
    const issue = (): PemPair =>
      issueServingCertificate({ service: GUARD_NAME, namespace: NAMESPACE, dnsNames: ['127.0.0.1'], ca });
    const mount = path.join(dir, 'tls');
    mkdirSync(mount);
    const first = issue();
    writeMountedSecret(mount, first, 1);
    const guard = await startServe('guard-files', [
      '--tls-cert-file',
      path.join(mount, 'tls.crt'),
      '--tls-key-file',
      path.join(mount, 'tls.key'),
    ]);

    const agent = keepAliveAgent();
    const before = await healthz(guard.port, ca.cert, { agent });
    expect(before).toMatchObject({ status: 200, fingerprint: fingerprint(first.cert) });

    const second = issue();
    writeMountedSecret(mount, second, 2);
    await waitFor(
      'the renewed certificate served to a new connection',
      async () => (await healthz(guard.port, ca.cert)).fingerprint === fingerprint(second.cert),
      20_000,
    );

    // The keep-alive connection opened before the renewal is still open and answering.
    const reused = await healthz(guard.port, ca.cert, { agent });
    expect(reused).toMatchObject({ status: 200, localPort: before.localPort, fingerprint: fingerprint(first.cert) });
    expect(guard.process.exitCode).toBeNull();
    expect(
      guard.logs.some((l) => l.includes('serving a renewed certificate') && l.includes(fingerprint(second.cert))),
    ).toBe(true);
  });

  it('files mode: a renewal whose key does not match is refused and the current certificate stays served', async () => {
    const ca = generateCa();
    const issue = (): PemPair =>
      issueServingCertificate({ service: GUARD_NAME, namespace: NAMESPACE, dnsNames: ['127.0.0.1'], ca });
    const mount = path.join(dir, 'tls-mismatch');
    mkdirSync(mount);
    const first = issue();
    writeMountedSecret(mount, first, 1);
    const guard = await startServe('guard-mismatch', [
      '--tls-cert-file',
      path.join(mount, 'tls.crt'),
      '--tls-key-file',
      path.join(mount, 'tls.key'),
    ]);

    writeMountedSecret(mount, { cert: issue().cert, key: first.key }, 2);
    await waitFor(
      'the refusal logged',
      () => guard.logs.some((l) => l.includes('renewed serving certificate not usable')),
      20_000,
    );
    expect(await healthz(guard.port, ca.cert)).toMatchObject({ status: 200, fingerprint: fingerprint(first.cert) });
  });

  it('self-managed mode: a certificate renewed in the Secret is served to new connections; the open connection carries on', async () => {
    const [webhook] = renderInstallManifests({ namespace: NAMESPACE, certMode: 'self-managed' }).filter(
      (o) => o.kind === 'MutatingWebhookConfiguration',
    );
    await admin.create('MutatingWebhookConfiguration', undefined, webhook as never);
    const guard = await startServe('guard-self-managed', ['--cert-mode', 'self-managed']);

    const secret = async (): Promise<SecretObject> =>
      await admin.get<SecretObject>('Secret', NAMESPACE, TLS_SECRET_NAME);
    const created = certificatesFromSecret(await secret())!;
    const agent = keepAliveAgent();
    const before = await healthz(guard.port, created.caCert, { agent, servername: SERVICE_NAME });
    expect(before).toMatchObject({ status: 200, fingerprint: fingerprint(created.cert) });

    // Another replica renews the serving certificate with the same CA (what self-managed mode does 30 days ahead).
    const current = await secret();
    const renewed = issueServingCertificate({
      service: GUARD_NAME,
      namespace: NAMESPACE,
      ca: { cert: splitPemBundle(created.caCert)[0]!, key: created.caKey },
    });
    const data = {
      ...current.data,
      'tls.crt': Buffer.from(renewed.cert).toString('base64'),
      'tls.key': Buffer.from(renewed.key).toString('base64'),
    };
    await admin.replace('Secret', NAMESPACE, TLS_SECRET_NAME, { ...current, data } as never);

    await waitFor(
      'the renewed certificate served to a new connection',
      async () =>
        (await healthz(guard.port, created.caCert, { servername: SERVICE_NAME })).fingerprint ===
        fingerprint(renewed.cert),
      20_000,
    );
    const reused = await healthz(guard.port, created.caCert, { agent, servername: SERVICE_NAME });
    expect(reused).toMatchObject({ status: 200, localPort: before.localPort, fingerprint: fingerprint(created.cert) });
    expect(
      guard.logs.some((l) => l.includes('serving a renewed certificate') && l.includes(fingerprint(renewed.cert))),
    ).toBe(true);
  });
});
