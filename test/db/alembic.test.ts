import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { AlembicProbeError, readAlembicRevision } from '../../src/db/alembic.js';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres.js';

describe('readAlembicRevision against PostgreSQL', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase('alembic_probe');
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
    await db.drop();
  });

  it('reports a fresh database (no table, then no row) as null', async () => {
    expect(await readAlembicRevision(db.url)).toEqual({ revision: null });
    await client.query('CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)');
    expect(await readAlembicRevision(db.url)).toEqual({ revision: null });
    expect(await readAlembicRevision(client)).toEqual({ revision: null });
  });

  it('reads the revision through a URL, a client and a pool', async () => {
    await client.query("INSERT INTO alembic_version VALUES ('cc92b33c6709')");
    expect(await readAlembicRevision(db.url)).toEqual({ revision: 'cc92b33c6709' });
    expect(await readAlembicRevision(client)).toEqual({ revision: 'cc92b33c6709' });
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      expect(await readAlembicRevision(pool)).toEqual({ revision: 'cc92b33c6709' });
    } finally {
      await pool.end();
    }
  });

  it('accepts opaque non-hex revisions and refuses unsafe ones', async () => {
    await client.query("UPDATE alembic_version SET version_num = '1b2c3d4e5f6g'");
    expect(await readAlembicRevision(client)).toEqual({ revision: '1b2c3d4e5f6g' });
    await client.query("UPDATE alembic_version SET version_num = 'x''; DROP TABLE y'");
    await expect(readAlembicRevision(db.url)).rejects.toThrow(/invalid revision "x'; DROP TABLE y"/);
  });

  it('refuses a table with several heads', async () => {
    await client.query("DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('a1'), ('b2')");
    await expect(readAlembicRevision(client)).rejects.toThrow(/2 rows/);
    await client.query("DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('cc92b33c6709')");
  });

  it('fails fast and without the password when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await readAlembicRevision(`postgresql://airflow:hunter2@127.0.0.1:${port}/airflow`, {
      timeoutMs: 1000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlembicProbeError);
    expect((error as Error).message).toMatch(/cannot connect to postgresql:\/\/airflow:\*\*\*@127\.0\.0\.1/);
    expect((error as Error).message).not.toContain('hunter2');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('fails within the timeout when the server accepts but never answers', async () => {
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const started = Date.now();
      await expect(readAlembicRevision(`postgresql://u:p@127.0.0.1:${port}/d`, { timeoutMs: 300 })).rejects.toThrow(
        AlembicProbeError,
      );
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('fails within the timeout when the statement blocks', async () => {
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN; LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      await expect(readAlembicRevision(db.url, { timeoutMs: 300 })).rejects.toThrow(/cannot read alembic_version/);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
  });

  it('rejects a URL that is not PostgreSQL before connecting', async () => {
    await expect(readAlembicRevision('mysql://u:p@h/d')).rejects.toThrow(/is not PostgreSQL/);
  });
});
