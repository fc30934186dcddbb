// A real OCI registry for the tests and the benchmarks: Debian's `docker-registry` (the CNCF distribution server) on
// 127.0.0.1 with TLS, anonymous or with htpasswd auth, in a temp directory removed on stop.
// Images are pushed through its HTTP API: config blobs carrying labels, single- and multi-arch.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { generateCa, issueServingCertificate } from '../src/certs/generate.js';

export const REGISTRY_BINARY = process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry';

export function registryAvailable(): boolean {
  return existsSync(REGISTRY_BINARY);
}

export interface TestRegistry {
  /** host:port */
  host: string;
  /** PEM of the CA that signed its certificate. */
  ca: string;
  credentials?: { username: string; password: string };
  /** Pushes an image with these labels; returns the manifest digest. */
  push(repository: string, reference: string, image: TestImage): Promise<string>;
  stop(): Promise<void>;
}

export type TestImage =
  { labels: Record<string, string> } | { platforms: Array<{ architecture: string; labels: Record<string, string> }> };

export async function startRegistry(
  options: { auth?: { username: string; password: string } } = {},
): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'adg-oci-registry-'));
  const ca = generateCa();
  const serving = issueServingCertificate({
    ca,
    service: 'registry',
    namespace: 'test',
    dnsNames: ['127.0.0.1', 'localhost'],
  });
  writeFileSync(join(dir, 'tls.crt'), serving.cert);
  writeFileSync(join(dir, 'tls.key'), serving.key);
  const auth = options.auth ? `auth:\n  htpasswd:\n    realm: adg-test\n    path: ${join(dir, 'htpasswd')}\n` : '';
  if (options.auth)
    writeFileSync(join(dir, 'htpasswd'), `${options.auth.username}:${bcrypt.hashSync(options.auth.password, 10)}\n`);
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: ${join(dir, 'tls.crt')}\n    key: ${join(dir, 'tls.key')}\n${auth}`,
  );
  const child = spawn(REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let host: string;
  try {
    host = await listeningAddress(child);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const authorization = options.auth
    ? `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`
    : undefined;
  const call = (method: string, path: string, body?: Buffer, contentType?: string) =>
    request(host, ca.cert, method, path, authorization, body, contentType);

  async function pushBlob(repository: string, content: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const started = await call('POST', `/v2/${repository}/blobs/uploads/`);
    if (started.status !== 202)
      throw new Error(`blob upload to ${repository}: HTTP ${started.status} ${started.body.toString()}`);
    const location = new URL(String(started.headers.location), `https://${host}`);
    location.searchParams.set('digest', digest);
    const put = await call('PUT', `${location.pathname}${location.search}`, content, 'application/octet-stream');
    if (put.status !== 201) throw new Error(`blob ${digest}: HTTP ${put.status} ${put.body.toString()}`);
    return digest;
  }

  async function pushManifest(
    repository: string,
    reference: string,
    manifest: object,
    mediaType: string,
  ): Promise<string> {
    const body = Buffer.from(JSON.stringify(manifest));
    const put = await call('PUT', `/v2/${repository}/manifests/${reference}`, body, mediaType);
    if (put.status !== 201)
      throw new Error(`manifest ${repository}:${reference}: HTTP ${put.status} ${put.body.toString()}`);
    return `sha256:${createHash('sha256').update(body).digest('hex')}`;
  }

  async function pushSingle(
    repository: string,
    reference: string,
    labels: Record<string, string>,
    architecture = 'amd64',
  ): Promise<{ digest: string; size: number }> {
    const config = Buffer.from(
      JSON.stringify({
        architecture,
        os: 'linux',
        config: { Labels: labels },
        rootfs: { type: 'layers', diff_ids: [] },
      }),
    );
    const configDigest = await pushBlob(repository, config);
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    };
    const digest = await pushManifest(repository, reference, manifest, manifest.mediaType);
    return { digest, size: Buffer.byteLength(JSON.stringify(manifest)) };
  }

  return {
    host,
    ca: ca.cert,
    ...(options.auth ? { credentials: options.auth } : {}),
    async push(repository, reference, image) {
      if ('labels' in image) return (await pushSingle(repository, reference, image.labels)).digest;
      const manifests = [];
      for (const p of image.platforms) {
        const { digest, size } = await pushSingle(
          repository,
          `${reference}-${p.architecture}`,
          p.labels,
          p.architecture,
        );
        manifests.push({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest,
          size,
          platform: { os: 'linux', architecture: p.architecture },
        });
      }
      const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests };
      return pushManifest(repository, reference, index, index.mediaType);
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The registry logs "listening on 127.0.0.1:PORT" once it serves (it was given port 0). */
function listeningAddress(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /listening on \[?(127\.0\.0\.1)\]?:(\d+)/.exec(log);
      if (match) {
        child.stderr?.off('data', onData);
        child.stdout?.off('data', onData);
        resolve(`${match[1]}:${match[2]}`);
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`docker-registry exited (${code}) before listening:\n${log.slice(-2000)}`)),
    );
    child.once('error', reject);
  });
}

function request(
  host: string,
  ca: string,
  method: string,
  path: string,
  authorization?: string,
  body?: Buffer,
  contentType?: string,
) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
    const req = https.request(
      {
        host: host.split(':')[0],
        port: Number(host.split(':')[1]),
        method,
        path,
        ca,
        headers: {
          ...(authorization ? { authorization } : {}),
          ...(contentType ? { 'content-type': contentType } : {}),
          ...(body ? { 'content-length': body.length } : { 'content-length': 0 }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
