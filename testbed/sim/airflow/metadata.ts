// The simulated Airflow's side of the metadata database: the real `alembic_version` table of a real
// PostgreSQL, changed the way Alembic does (one transaction per migration step), under Airflow's
// global migration lock (`pg_advisory_lock(1)`).
import pg from 'pg';
import { readAlembicRevision } from '../../../src/db/alembic.js';
import { parseDatabaseUrl } from '../../../src/db/connection.js';

/** Airflow's DBLocks.MIGRATIONS. */
export const MIGRATIONS_LOCK_ID = 1;

// Lets the server notice a vanished client even while it waits for a lock, as it would for a
// killed process (PostgreSQL 14+).
const SESSION_OPTIONS = '-c client_connection_check_interval=100';

export class AbortedError extends Error {
  override name = 'AbortedError';
}

export function clientConfig(url: string, timeoutMs?: number): pg.ClientConfig {
  const config = parseDatabaseUrl(url, { applicationName: 'airflow-sim' });
  config.options = SESSION_OPTIONS;
  config.connectionTimeoutMillis = timeoutMs ?? config.connectionTimeoutMillis ?? 5000;
  return config;
}

/** Rejects with AbortedError as soon as the signal fires. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new AbortedError('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return abortable(new Promise<void>((resolve) => setTimeout(resolve, ms)), signal);
}

/** One process's connection: closing it (also on abort) releases its locks and rolls back. */
export class MigrationSession {
  private readonly client: pg.Client;
  private closed = false;

  private constructor(
    client: pg.Client,
    private readonly signal: AbortSignal,
  ) {
    this.client = client;
    signal.addEventListener('abort', () => void this.close(), { once: true });
  }

  static async open(url: string, signal: AbortSignal): Promise<MigrationSession> {
    const client = new pg.Client(clientConfig(url));
    client.on('error', () => undefined);
    try {
      await abortable(client.connect(), signal);
    } catch (error) {
      void client.end().catch(() => undefined);
      throw error;
    }
    return new MigrationSession(client, signal);
  }

  private run<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return abortable(this.client.query<R>(text, values), this.signal);
  }

  /** Blocks while another migration holds the lock, as `airflow db migrate/downgrade` does. */
  async lockMigrations(): Promise<void> {
    await this.run("SET lock_timeout = '1800s'");
    await this.run('SELECT pg_advisory_lock($1)', [MIGRATIONS_LOCK_ID]);
  }

  async unlockMigrations(): Promise<void> {
    await this.run('SELECT pg_advisory_unlock($1)', [MIGRATIONS_LOCK_ID]);
  }

  async currentRevision(): Promise<string | null> {
    return (await abortable(readAlembicRevision(this.client, { timeoutMs: 10_000 }), this.signal)).revision;
  }

  /** Fresh database: the table Alembic creates, stamped with a revision. */
  async stamp(revision: string): Promise<void> {
    await this.run(
      'CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))',
    );
    await this.run('DELETE FROM alembic_version');
    await this.run('INSERT INTO alembic_version (version_num) VALUES ($1)', [revision]);
  }

  /**
   * One migration step in its own transaction, lasting `durationMs` (the DDL's time). Aborting
   * mid-step closes the connection, so the step rolls back and the previous one stays committed.
   */
  async step(from: string, to: string, durationMs: number): Promise<void> {
    await this.run('BEGIN');
    const updated = await this.run('UPDATE alembic_version SET version_num = $1 WHERE version_num = $2', [to, from]);
    if (updated.rowCount !== 1) {
      await this.run('ROLLBACK');
      throw new Error(
        `Online migration expected to match one row when updating '${from}' to '${to}' in 'alembic_version'; ${updated.rowCount ?? 0} found`,
      );
    }
    if (durationMs > 0) await sleep(durationMs, this.signal);
    await this.run('COMMIT');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }
}

/** Pools for the containers' periodic schema reads, one per database URL. */
export class PoolCache {
  private readonly pools = new Map<string, pg.Pool>();

  get(url: string): pg.Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = new pg.Pool({ ...clientConfig(url, 2000), max: 4, idleTimeoutMillis: 2000 });
      pool.on('error', () => undefined);
      this.pools.set(url, pool);
    }
    return pool;
  }

  async closeAll(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  }
}
