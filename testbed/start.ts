// The testbed starter: the simulated cluster, PostgreSQL and the guard beside them — the one way
// the end-to-end harness (test/e2e/harness.ts), the demo (testbed/demo) and the benchmarks
// (testbed/bench) bring them up. `stop()` ends every process it started and removes every file it
// wrote. The guard itself is the product's build (`npm run build`: dist/src/cli/main.js).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { generateCertificates } from '../src/certs/generate.js';
import { renderInstallManifests } from '../src/install/manifests.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { startSimCluster, type SimCluster, type SimClusterOptions } from './sim/cluster.js';
import { RESOURCES } from './sim/resources.js';
import type { KubeObject } from './sim/types.js';

export const GUARD_NAMESPACE = 'airflow-downgrade-guard';
export const GUARD_SERVICE_ACCOUNT = 'airflow-downgrade-guard';
export const GUARD_USER = `system:serviceaccount:${GUARD_NAMESPACE}:${GUARD_SERVICE_ACCOUNT}`;

/** The repository root, found upwards from here (this file also runs compiled, from dist-testbed/). */
function findRepoRoot(): string {
  for (let dir = import.meta.dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'testbed', 'package.json'))) return dir;
  }
  throw new Error(`testbed/package.json not found above ${import.meta.dirname}`);
}
export const REPO_ROOT = findRepoRoot();
/** The guard's CLI as `npm run build` leaves it. */
export const GUARD_CLI = path.join(REPO_ROOT, 'dist/src/cli/main.js');

/** Polls `probe` until it returns a value other than undefined/false; its last error is in the timeout's message. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The guard's serving certificate (for its Service, and 127.0.0.1 where it listens here) as files. */
export interface GuardTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  caPem: string;
}

export function writeGuardTls(dir: string): GuardTls {
  const certs = generateCertificates({
    service: 'airflow-downgrade-guard',
    namespace: GUARD_NAMESPACE,
    dnsNames: ['127.0.0.1', 'localhost'],
  });
  const tls: GuardTls = {
    certFile: path.join(dir, 'tls.crt'),
    keyFile: path.join(dir, 'tls.key'),
    caFile: path.join(dir, 'ca.crt'),
    caPem: certs.caCert,
  };
  writeFileSync(tls.certFile, certs.cert);
  writeFileSync(tls.keyFile, certs.key, { mode: 0o600 });
  writeFileSync(tls.caFile, certs.caCert);
  return tls;
}

/**
 * The install's MutatingWebhookConfiguration pointed at a guard's local URL. Without `caPem` the
 * guard injects the caBundle itself (self-managed certificates).
 */
export function guardWebhookConfiguration(
  url: string,
  caPem: string | undefined,
  install: KubeObject[] = renderInstallManifests({
    namespace: GUARD_NAMESPACE,
    watchNamespaces: [],
    certMode: 'files',
  } as never) as unknown as KubeObject[],
): KubeObject {
  const config = structuredClone(install.find((o) => o.kind === 'MutatingWebhookConfiguration')) as KubeObject & {
    webhooks: Array<Record<string, unknown>>;
  };
  for (const hook of config.webhooks)
    hook.clientConfig = {
      url: `${url}/mutate`,
      ...(caPem ? { caBundle: Buffer.from(caPem).toString('base64') } : {}),
    };
  delete (config.metadata as { annotations?: unknown }).annotations;
  return config;
}

export interface ServeArgs {
  /** 0: the guard binds a free port and logs it. */
  port: number;
  identity: string;
  kubeconfig: string;
  /** Certificate files, or the guard's own self-managed certificate. */
  tls: GuardTls | 'self-managed';
  /** Further `serve` flags. */
  args?: string[];
  /** Node flags for the guard process (e.g. --cpu-prof). */
  nodeFlags?: string[];
}

/** The argv (after the node binary) of `airflow-downgrade-guard serve` on 127.0.0.1. */
export function serveArgv(o: ServeArgs): string[] {
  const tls =
    o.tls === 'self-managed'
      ? ['--cert-mode', 'self-managed', '--cert-extra-names', '127.0.0.1']
      : ['--tls-cert-file', o.tls.certFile, '--tls-key-file', o.tls.keyFile];
  return [
    ...(o.nodeFlags ?? []),
    GUARD_CLI,
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(o.port),
    ...tls,
    '--kubeconfig',
    o.kubeconfig,
    '--identity',
    o.identity,
    ...(o.args ?? []),
  ];
}

/** The environment a guard runs with here: its namespace as the Downward API would give it. */
export function guardEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, POD_NAMESPACE: GUARD_NAMESPACE, ADG_LOG_LEVEL: 'info' };
}

export interface Guard {
  process: ChildProcess;
  port: number;
  logs: string[];
  identity: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnGuardOptions {
  env?: NodeJS.ProcessEnv;
  /** How the process is started and stopped (the tests: in a process group of its own, test/support/processes.ts). */
  spawn?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
  kill?: (child: ChildProcess, signal: NodeJS.Signals) => Promise<void>;
  /** Runs first in `stop()`. */
  beforeStop?: () => void;
  /** Learns of the process at once, so an owner can kill a guard that is still starting. */
  onSpawn?: (child: ChildProcess) => void;
  /** Every log line is also appended here. */
  logFile?: string;
}

/** Sends `signal` and resolves once the child has exited. */
async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

/**
 * Starts `serve` (argv after the node binary, see serveArgv), collects its log lines, and resolves
 * once it logs that it serves, with the port it bound.
 */
export async function spawnGuard(identity: string, argv: string[], options: SpawnGuardOptions = {}): Promise<Guard> {
  const start = options.spawn ?? spawn;
  const kill = options.kill ?? killChild;
  const child = start(process.execPath, argv, { env: options.env ?? guardEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  options.onSpawn?.(child);
  const logs: string[] = [];
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(line);
    if (options.logFile) appendFileSync(options.logFile, chunk);
    if (process.env.ADG_DEBUG) process.stderr.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const guard: Guard = {
    process: child,
    port: 0,
    logs,
    identity,
    async stop(signal = 'SIGTERM') {
      options.beforeStop?.();
      await kill(child, signal);
    },
  };
  try {
    const serving = await waitFor(
      `guard ${identity} serving`,
      () =>
        logs.find((l) => l.includes('airflow-downgrade-guard serving')) ??
        (child.exitCode !== null || child.signalCode !== null
          ? Promise.reject(new Error(`guard exited: ${logs.slice(-5).join('\n')}`))
          : false),
      20_000,
    );
    guard.port = servingPort(serving);
    return guard;
  } catch (error) {
    await guard.stop('SIGKILL'); // never leave a half-started guard behind
    throw error;
  }
}

/** The port a guard reports in its "serving" log line (it listens on port 0 here). */
export function servingPort(line: string): number {
  const port = (JSON.parse(line) as { port?: unknown }).port;
  if (typeof port !== 'number' || port <= 0) throw new Error(`no port in the guard's serving line: ${line}`);
  return port;
}

/** PostgreSQL of a testbed: DATABASE_URL's server when set (an admin URL), else an embedded one. */
export interface TestbedPostgres {
  /** Admin URL (may create databases). */
  adminUrl: string;
  /** The embedded server's postmaster (undefined with DATABASE_URL: not ours). */
  serverPid(): number | undefined;
  /** A fresh, uniquely named database; dropped by stop(). */
  createDatabase(prefix: string): Promise<string>;
  stop(): Promise<void>;
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startTestbedPostgres(options: { maxConnections?: number } = {}): Promise<TestbedPostgres> {
  const external = process.env.DATABASE_URL;
  const embedded = external ? undefined : await startEmbeddedPostgres(options);
  const adminUrl = external ?? embedded!.url;
  const created: string[] = [];
  return {
    adminUrl,
    serverPid: () => embedded?.pid(),
    async createDatabase(prefix) {
      const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${process.pid}_${randomBytes(3).toString('hex')}`;
      await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
      created.push(name);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async stop() {
      for (const name of created)
        await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await embedded?.destroy();
    },
  };
}

export interface TestbedOptions {
  /** Prefix of the testbed's temporary directory (in os.tmpdir(), removed by stop()). */
  prefix?: string;
  /** The simulated cluster's options. */
  sim?: SimClusterOptions;
  /**
   * Start PostgreSQL too (startTestbedPostgres) with a fresh metadata database, which the simulated
   * Airflow containers use unless `sim.databaseUrl` says otherwise.
   */
  postgres?: boolean | { maxConnections?: number };
}

export interface GuardStart {
  /** 0 (default): a free port, read from the guard's log. */
  port?: number;
  /** Further `serve` flags. */
  args?: string[];
  nodeFlags?: string[];
  tls?: 'self-managed';
  spawn?: SpawnGuardOptions;
}

export interface Testbed {
  /** Temporary directory of the testbed's files (certificates, kubeconfigs, logs). */
  dir: string;
  sim: SimCluster;
  postgres?: TestbedPostgres;
  /** The metadata database made with `postgres`. */
  metadataUrl?: string;
  tls: GuardTls;
  /** kubeconfig files: the admin's, and the guard ServiceAccount's (its own identity, trusted by its own webhook). */
  adminKubeconfig: string;
  guardKubeconfig: string;
  /** The install's webhook, pointed at a guard's URL, written to the store. */
  registerWebhook(url: string, caPem?: string): void;
  /** `serve` with the testbed's certificate and ServiceAccount kubeconfig; stopped by stop(). */
  startGuard(identity: string, options?: GuardStart): Promise<Guard>;
  stop(): Promise<void>;
}

/** The simulated cluster (+ PostgreSQL), the guard's namespace, certificate and kubeconfig. */
export async function startTestbed(options: TestbedOptions = {}): Promise<Testbed> {
  const dir = mkdtempSync(path.join(os.tmpdir(), options.prefix ?? 'adg-testbed-'));
  const guards: Guard[] = [];
  let postgres: TestbedPostgres | undefined;
  let sim: SimCluster | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(guards.map((g) => g.stop('SIGTERM')));
    await sim?.stop();
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let metadataUrl: string | undefined;
    if (options.postgres) {
      postgres = await startTestbedPostgres(options.postgres === true ? {} : options.postgres);
      metadataUrl = await postgres.createDatabase('airflow_metadata');
    }
    sim = await startSimCluster({ ...(metadataUrl ? { databaseUrl: metadataUrl } : {}), ...options.sim });
    const started = sim;
    const adminKubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(adminKubeconfig, sim.api.kubeconfig(), { mode: 0o600 });
    const guardKubeconfig = path.join(dir, 'guard-kubeconfig');
    const token = sim.api.tokens.issueServiceAccountToken(GUARD_NAMESPACE, GUARD_SERVICE_ACCOUNT);
    writeFileSync(guardKubeconfig, sim.api.kubeconfig(token), { mode: 0o600 });
    if (!sim.store.get(RESOURCES.namespaces, undefined, GUARD_NAMESPACE))
      sim.store.create(RESOURCES.namespaces, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: GUARD_NAMESPACE, labels: { 'kubernetes.io/metadata.name': GUARD_NAMESPACE } },
      });
    const tls = writeGuardTls(dir);
    return {
      dir,
      sim,
      ...(postgres ? { postgres } : {}),
      ...(metadataUrl ? { metadataUrl } : {}),
      tls,
      adminKubeconfig,
      guardKubeconfig,
      registerWebhook(url, caPem = tls.caPem) {
        started.store.create(RESOURCES.mutatingwebhookconfigurations, guardWebhookConfiguration(url, caPem));
      },
      async startGuard(identity, start = {}) {
        const argv = serveArgv({
          port: start.port ?? 0,
          identity,
          kubeconfig: guardKubeconfig,
          tls: start.tls ?? tls,
          ...(start.args ? { args: start.args } : {}),
          ...(start.nodeFlags ? { nodeFlags: start.nodeFlags } : {}),
        });
        const guard = await spawnGuard(identity, argv, start.spawn);
        guards.push(guard);
        return guard;
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
