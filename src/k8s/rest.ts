// A thin JSON client for the Kubernetes REST API. Authentication and TLS come from
// @kubernetes/client-node's KubeConfig (kubeconfig files, in-cluster service account, exec
// plugins); the objects stay plain JSON, which is what the pure core works on.
import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GUARD_NAME, GUARD_VERSION } from '../install/names.js';

const USER_AGENT = `${GUARD_NAME}/${GUARD_VERSION}`;

export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** Errors worth another attempt: conflicts, throttling, server trouble, and the network. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof KubeApiError) return [409, 429, 500, 502, 503, 504].includes(error.code) || error.code === 0;
  return true;
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
}

/** Nothing to connect with: no kubeconfig anywhere and not in a pod. */
export class NoClusterConfigError extends Error {
  override name = 'NoClusterConfigError';
}

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Why there is no default Kubernetes configuration, or undefined when there is one. Without it,
 * client-node falls back to http://localhost:8080, and the error then blames TLS settings.
 */
export function missingClusterConfig(
  env: NodeJS.ProcessEnv,
  home: string,
  exists: (path: string) => boolean,
): string | undefined {
  if (env.KUBECONFIG) return undefined; // client-node reads it and reports what is wrong with it
  const homeConfig = join(home, '.kube', 'config');
  if (exists(homeConfig)) return undefined;
  const inCluster = env.KUBERNETES_SERVICE_HOST
    ? exists(SERVICE_ACCOUNT_TOKEN)
      ? undefined
      : `KUBERNETES_SERVICE_HOST is set but ${SERVICE_ACCOUNT_TOKEN} does not exist`
    : 'KUBERNETES_SERVICE_HOST is not set';
  if (inCluster === undefined) return undefined;
  return `no cluster configuration found; looked at --kubeconfig (not given), KUBECONFIG (not set), ${homeConfig} (does not exist), in-cluster (${inCluster})`;
}

export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else {
    const missing = missingClusterConfig(process.env, homedir(), existsSync);
    if (missing) throw new NoClusterConfigError(missing);
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster in the configuration (kubeconfig or in-cluster)');
  return kc;
}

export class KubeRest {
  private readonly server: URL;
  private readonly agent: https.Agent | http.Agent;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly defaultTimeoutMs = 10_000,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the Kubernetes configuration');
    this.server = new URL(cluster.server);
    this.agent =
      this.server.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: 32 })
        : new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  /** The API server's URL, for messages. */
  get serverUrl(): string {
    return this.server.origin;
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    // The API server names the field manager of an update after the user agent's first segment:
    // the guard's writes (drain, release) are owned by `airflow-downgrade-guard` (docs/gitops.md).
    const requestOptions: https.RequestOptions = {
      method,
      headers: { Accept: 'application/json', 'User-Agent': USER_AGENT },
    };
    await this.kubeConfig.applyToHTTPSOptions(requestOptions);
    requestOptions.agent = this.agent;
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (payload !== undefined) {
      (requestOptions.headers as Record<string, string>)['Content-Type'] = options.contentType ?? 'application/json';
      // A sized body, not a chunked one: kube-apiserver answers a DELETE with options early (404,
      // 409) without reading a chunked body to its end, and the next request on that kept-alive
      // connection then gets a plain "400 Bad Request".
      (requestOptions.headers as Record<string, string>)['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const transport = url.protocol === 'https:' ? https : http;
      const req = transport.request(url, requestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const kube = (parsed ?? {}) as KubeStatus;
          reject(
            new KubeApiError(
              status,
              kube.reason ?? 'Unknown',
              `${method} ${url.pathname}: ${status} ${kube.message ?? text.slice(0, 200)}`,
            ),
          );
        });
      });
      req.setTimeout(timeoutMs, () =>
        req.destroy(new KubeApiError(0, 'Timeout', `${method} ${url.pathname}: no answer within ${timeoutMs} ms`)),
      );
      req.on('error', (err) =>
        reject(
          err instanceof KubeApiError
            ? err
            : new KubeApiError(0, 'NetworkError', `${method} ${url.pathname}: ${err.message}`),
        ),
      );
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface RetryOptions {
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (error: unknown, attempt: number) => void;
  /** Which errors are worth another attempt (default: isRetryable). */
  retryable?: (error: unknown) => boolean;
}

/** Runs fn until it succeeds or fails with a non-retryable error; exponential backoff with jitter. */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 6;
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 3_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= attempts || !(options.retryable ?? isRetryable)(error)) throw error;
      options.onRetry?.(error, attempt);
      const delay = Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
