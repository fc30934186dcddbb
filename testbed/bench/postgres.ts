// PostgreSQL for the benchmark: the testbed's (testbed/start.ts, startTestbedPostgres), seeded.
import pg from 'pg';

export { freePort } from '../embedded-postgres.js';

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
