// Reads an image's config (its labels) from its registry over the OCI distribution API: image
// indexes / manifest lists (linux/amd64 picked), the anonymous bearer-token flow, Basic and
// bearer credentials from a .dockerconfigjson, registry mirrors and extra CA certificates.
// Config blobs are checked against their digest. Nothing here logs a credential.
import { createHash } from 'node:crypto';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { ImageReference } from '../core/images.js';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const DOCKER_HUB = 'registry-1.docker.io';
const MAX_BODY = 4 * 1024 * 1024;

/** `.dockerconfigjson` contents: `{"auths": {"host": {"username", "password"} | {"auth": base64(user:pass)}}}`. */
export interface DockerConfig {
  auths?: Record<string, { username?: string; password?: string; auth?: string; identitytoken?: string }>;
}

export interface RegistryOptions {
  dockerConfigs?: DockerConfig[];
  /** Extra CA certificates (PEM) trusted besides the system's. */
  ca?: string[];
  /** Registry host -> mirror host to read from instead. */
  mirrors?: Record<string, string>;
  timeoutMs?: number;
}

export interface ImageConfig {
  /** Digest of the image manifest (the platform's, for an index). */
  digest: string;
  labels: Record<string, string>;
}

export class RegistryError extends Error {
  override name = 'RegistryError';
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** The labels of an image, read from its registry. */
export async function readImageConfig(image: ImageReference, options: RegistryOptions = {}): Promise<ImageConfig> {
  const host = registryHost(image);
  const mirror = options.mirrors?.[host];
  const configs = options.dockerConfigs ?? [];
  // A mirror is read with its own credentials when the pull secrets have some, else the registry's.
  const session = new Session(
    mirror ?? host,
    (mirror && credentialsFor(mirror, configs)) || credentialsFor(host, configs),
    options,
  );
  const repository =
    image.registry === undefined && !image.repository.includes('/') ? `library/${image.repository}` : image.repository;
  const reference = image.digest ?? image.tag ?? 'latest';
  let manifest = await session.get(`/v2/${repository}/manifests/${reference}`, MANIFEST_TYPES);
  let digest = contentDigest(manifest);
  let body = parseJson(manifest.body, 'manifest');
  if (INDEX_TYPES.has(mediaType(manifest, body))) {
    const entries = Array.isArray(body.manifests)
      ? (body.manifests as Array<{ digest?: unknown; platform?: { os?: string; architecture?: string } }>)
      : [];
    const chosen =
      entries.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64') ??
      entries.find((m) => m.platform?.os !== 'unknown');
    if (!chosen || typeof chosen.digest !== 'string')
      throw new RegistryError(`${describe(image)}: the image index lists no linux/amd64 image`);
    manifest = await session.get(`/v2/${repository}/manifests/${chosen.digest}`, MANIFEST_TYPES);
    digest = chosen.digest;
    body = parseJson(manifest.body, 'manifest');
  }
  const configDigest = (body.config as { digest?: unknown } | undefined)?.digest;
  if (typeof configDigest !== 'string')
    throw new RegistryError(`${describe(image)}: the manifest names no config blob`);
  const blob = await session.get(`/v2/${repository}/blobs/${configDigest}`, '*/*');
  if (`sha256:${createHash('sha256').update(blob.body).digest('hex')}` !== configDigest) {
    throw new RegistryError(`${describe(image)}: the config blob does not match its digest ${configDigest}`);
  }
  const config = parseJson(blob.body, 'config blob') as { config?: { Labels?: Record<string, unknown> } };
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(config.config?.Labels ?? {}))
    if (typeof value === 'string') labels[key] = value;
  return { digest, labels };
}

function registryHost(image: ImageReference): string {
  return image.registry === undefined || image.registry === 'docker.io' ? DOCKER_HUB : image.registry;
}

function describe(image: ImageReference): string {
  return `${image.registry ? `${image.registry}/` : ''}${image.repository}${image.tag ? `:${image.tag}` : ''}${image.digest ? `@${image.digest}` : ''}`;
}

function credentialsFor(host: string, configs: DockerConfig[]): { username: string; password: string } | undefined {
  const names =
    host === DOCKER_HUB
      ? [host, 'docker.io', 'index.docker.io', 'https://index.docker.io/v1/']
      : [host, `https://${host}`];
  for (const config of configs) {
    for (const name of names) {
      const entry = config.auths?.[name];
      if (!entry) continue;
      if (entry.username !== undefined && entry.password !== undefined)
        return { username: entry.username, password: entry.password };
      if (entry.auth) {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
    }
  }
  return undefined;
}

function contentDigest(response: Response): string {
  const header = response.headers['docker-content-digest'];
  return typeof header === 'string' && /^sha256:[0-9a-f]{64}$/.test(header)
    ? header
    : `sha256:${createHash('sha256').update(response.body).digest('hex')}`;
}

function mediaType(response: Response, body: Record<string, unknown>): string {
  if (typeof body.mediaType === 'string') return body.mediaType;
  const header = response.headers['content-type'];
  return typeof header === 'string' ? header.split(';')[0]!.trim() : '';
}

function parseJson(body: Buffer, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new RegistryError(`the registry's ${what} is not a JSON object`);
}

/** One registry host: remembers the Authorization that worked. */
class Session {
  private authorization: string | undefined;

  constructor(
    private readonly host: string,
    private readonly credentials: { username: string; password: string } | undefined,
    private readonly options: RegistryOptions,
  ) {}

  async get(path: string, accept: string): Promise<Response> {
    let response = await this.request(`https://${this.host}${path}`, accept, this.authorization);
    if (response.status === 401) {
      this.authorization = await this.authorize(response);
      response = await this.request(`https://${this.host}${path}`, accept, this.authorization);
    }
    // Blob stores answer with a redirect; credentials stay with the registry.
    for (let hops = 0; hops < 5 && response.status >= 300 && response.status < 400; hops++) {
      const location = response.headers.location;
      if (typeof location !== 'string') break;
      response = await this.request(new URL(location, `https://${this.host}`).toString(), accept, undefined);
    }
    if (response.status !== 200) throw new RegistryError(`GET ${this.host}${path}: HTTP ${response.status}`);
    return response;
  }

  private async authorize(challenge: Response): Promise<string> {
    const header = String(challenge.headers['www-authenticate'] ?? '');
    const basic = this.credentials
      ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`
      : undefined;
    if (/^basic/i.test(header)) {
      if (!basic) throw new RegistryError(`${this.host} needs credentials (none in the pull secrets)`);
      return basic;
    }
    const params = Object.fromEntries(
      [...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
    );
    if (!/^bearer/i.test(header) || !params.realm)
      throw new RegistryError(`${this.host} answered 401 without a usable challenge`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    if (params.scope) url.searchParams.set('scope', params.scope);
    const token = await this.request(url.toString(), 'application/json', basic);
    if (token.status !== 200)
      throw new RegistryError(`token from ${url.host}: HTTP ${token.status}${basic ? '' : ' (anonymous)'}`);
    const body = parseJson(token.body, 'token response');
    const value = body.token ?? body.access_token;
    if (typeof value !== 'string') throw new RegistryError(`token from ${url.host}: no token in the answer`);
    return `Bearer ${value}`;
  }

  private request(url: string, accept: string, authorization: string | undefined): Promise<Response> {
    return new Promise((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new RegistryError(`refusing ${target.protocol} URL ${target.host}: registries are read over HTTPS`));
        return;
      }
      const req = https.get(
        target,
        {
          headers: { accept, ...(authorization ? { authorization } : {}) },
          timeout: this.options.timeoutMs ?? 10_000,
          ...(this.options.ca?.length ? { ca: [...rootCertificates, ...this.options.ca] } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY) req.destroy(new RegistryError(`${target.host}: answer larger than ${MAX_BODY} bytes`));
            else chunks.push(chunk);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new RegistryError(`${target.host}: no answer within ${this.options.timeoutMs ?? 10_000} ms`)),
      );
      req.on('error', (error) =>
        reject(error instanceof RegistryError ? error : new RegistryError(`${target.host}: ${error.message}`)),
      );
    });
  }
}
