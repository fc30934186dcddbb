// Whether an `airflow db migrate/downgrade` is running right now: both hold Postgres advisory lock
// 1 (MIGRATIONS) for their whole duration. After a lost exec connection the command may still be
// running inside the pod; the coordinator waits for the lock before it reads the outcome.
import pg from 'pg';
import { connectPooled } from './alembic.js';
import { parseDatabaseUrl, redactConnectionString } from './connection.js';
import type { DatabasePools } from './pool.js';

const MIGRATIONS_LOCK_ID = 1;

// pg_advisory_lock(bigint) shows classid = high 32 bits, objid = low 32 bits, objsubid = 1.
const LOCK_HELD = `SELECT count(*)::int AS n FROM pg_locks
             WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND objsubid = 1 AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** `pools`: reuse a pooled connection for the URL instead of opening one per check. */
export async function isMigrationRunning(url: string, timeoutMs = 5000, pools?: DatabasePools): Promise<boolean> {
  const where = redactConnectionString(url);
  if (pools) {
    let client: pg.PoolClient | undefined;
    let broken = false;
    try {
      client = await connectPooled(pools, url, timeoutMs, where);
      return await lockHeld(client, timeoutMs);
    } catch (error) {
      broken = true;
      throw new Error(
        `cannot check the migration lock on ${where}: ${redactConnectionString((error as Error).message)}`,
      );
    } finally {
      client?.release(broken);
    }
  }
  const client = new pg.Client(parseDatabaseUrl(url, { timeoutMs, applicationName: 'airflow-downgrade-guard' }));
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await lockHeld(client, timeoutMs);
  } catch (error) {
    throw new Error(`cannot check the migration lock on ${where}: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function lockHeld(client: pg.ClientBase, timeoutMs: number): Promise<boolean> {
  const result = await client.query({
    text: LOCK_HELD,
    values: [MIGRATIONS_LOCK_ID],
    query_timeout: timeoutMs,
  } as pg.QueryConfig);
  return Number((result.rows[0] as { n: number }).n) > 0;
}
