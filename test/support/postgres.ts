// Real PostgreSQL for tests: one embedded server per test run (started by global-setup.ts, or
// DATABASE_URL when set), a fresh database per test file, and private servers for tests that need
// Postgres to go away and come back.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../testbed/embedded-postgres.js';

export { freePort, startEmbeddedPostgres, type EmbeddedServer } from '../../testbed/embedded-postgres.js';

export const ADMIN_URL_ENV = 'ADG_TEST_ADMIN_DATABASE_URL';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
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
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 30) || 'test';
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
