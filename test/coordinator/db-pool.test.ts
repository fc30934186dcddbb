// The coordinator's metadata probes over pooled connections: reused, bounded, redacted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { AlembicProbeError, readAlembicRevision } from '../../src/db/alembic.js';
import { isMigrationRunning } from '../../src/db/migration-lock.js';
import { DatabasePools } from '../../src/db/pool.js';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres.js';

describe('DatabasePools with the metadata probes', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  const pools = new DatabasePools({ maxConnections: 2, idleTimeoutMs: 5_000, maxPools: 2, timeoutMs: 1_000 });

  beforeAll(async () => {
    db = await createTestDatabase('pool_probe');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(
      "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('cc92b33c6709')",
    );
  });
  afterAll(async () => {
    await pools.close();
    await admin.end();
    await db.drop();
  });

  async function guardConnections(): Promise<number> {
    const r = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'airflow-downgrade-guard'",
    );
    return (r.rows[0] as { n: number }).n;
  }

  it('reads revisions and the migration lock over one kept connection', async () => {
    for (let i = 0; i < 10; i++) {
      expect(await readAlembicRevision(db.url, { pools })).toEqual({ revision: 'cc92b33c6709' });
      expect(await isMigrationRunning(db.url, 1_000, pools)).toBe(false);
    }
    expect(await guardConnections()).toBe(1);
    expect(pools.size).toBe(1);
  });

  it('sees a migration holding advisory lock 1 through the pool', async () => {
    const migrator = new pg.Client({ connectionString: db.url });
    await migrator.connect();
    try {
      await migrator.query('SELECT pg_advisory_lock(1)');
      expect(await isMigrationRunning(db.url, 1_000, pools)).toBe(true);
      await migrator.query('SELECT pg_advisory_unlock(1)');
      expect(await isMigrationRunning(db.url, 1_000, pools)).toBe(false);
    } finally {
      await migrator.end();
    }
  });

  it('fails fast with the password redacted when nothing listens', async () => {
    const url = `postgresql://airflow:hunter2@127.0.0.1:${await freePort()}/airflow`;
    const started = Date.now();
    const error = await readAlembicRevision(url, { pools, timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlembicProbeError);
    expect((error as Error).message).toMatch(/cannot connect to postgresql:\/\/airflow:\*\*\*@127\.0\.0\.1/);
    expect((error as Error).message).not.toContain('hunter2');
    const lockError = await isMigrationRunning(url, 1_000, pools).catch((e: unknown) => e as Error);
    expect((lockError as Error).message).toMatch(/cannot check the migration lock on postgresql:\/\/airflow:\*\*\*@/);
    expect((lockError as Error).message).not.toContain('hunter2');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('keeps at most maxPools pools, closing the least recently used', async () => {
    const other = (n: number): string => db.url.replace(/(\?|$)/, `?application_name=x${n}$1`);
    const first = pools.pool(db.url);
    pools.pool(other(1));
    pools.pool(db.url); // most recently used again
    pools.pool(other(2));
    expect(pools.size).toBe(2);
    expect(pools.pool(db.url)).toBe(first);
    await pools.discard(db.url);
    expect(pools.size).toBe(1);
    expect(await readAlembicRevision(db.url, { pools })).toEqual({ revision: 'cc92b33c6709' });
  });

  it('refuses invalid bounds', () => {
    expect(() => new DatabasePools({ maxConnections: 0 })).toThrow(/maxConnections must be a positive number/);
  });
});
