import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { adminDatabaseUrl, createTestDatabase, startPrivatePostgres } from '../support/postgres.js';

async function queryOnce(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('test PostgreSQL harness', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('provides an admin URL to a real server', async () => {
    const url = await adminDatabaseUrl();
    const result = await queryOnce(url, 'SELECT 1 AS one');
    expect(result.rows[0]).toEqual({ one: 1 });
  });

  it('creates isolated databases and drops them even with open connections', async () => {
    const a = await createTestDatabase('harness a');
    const b = await createTestDatabase('harness');
    expect(a.name).not.toBe(b.name);
    expect(a.name).toMatch(/^harness_a_\d+_[0-9a-f]{8}$/);
    await queryOnce(a.url, 'CREATE TABLE t (x int)');
    await expect(queryOnce(b.url, 'SELECT * FROM t')).rejects.toThrow(/does not exist/);
    const lingering = new pg.Client({ connectionString: a.url });
    lingering.on('error', () => undefined);
    await lingering.connect();
    await a.drop();
    await b.drop();
    await lingering.end().catch(() => undefined);
    const admin = await adminDatabaseUrl();
    const left = await queryOnce(
      admin,
      `SELECT count(*)::int AS n FROM pg_database WHERE datname IN ('${a.name}', '${b.name}')`,
    );
    expect(left.rows[0]).toEqual({ n: 0 });
  });

  it('runs a private server that can go away and come back with its data', async () => {
    const server = await startPrivatePostgres();
    cleanups.push(server.destroy);
    await queryOnce(server.url, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)');
    await server.stop();
    await expect(queryOnce(server.url, 'SELECT 1')).rejects.toThrow();
    await server.start();
    const result = await queryOnce(server.url, 'SELECT x FROM kept');
    expect(result.rows).toEqual([{ x: 42 }]);
  });
});
