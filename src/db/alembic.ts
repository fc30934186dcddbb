// Reads Airflow's schema revision: table `alembic_version`, one row `version_num`. No table or no
// row is a fresh database (revision null). A dead or unreachable database fails fast with a clear,
// password-free error instead of hanging the caller.
import pg from 'pg';
import { isValidRevision } from '../core/heads.js';
import { parseDatabaseUrl, redactConnectionString } from './connection.js';
import type { DatabasePools } from './pool.js';

export class AlembicProbeError extends Error {
  override name = 'AlembicProbeError';
}

export interface AlembicRevision {
  /** null: fresh database (no alembic_version table, or no row in it). */
  revision: string | null;
}

export interface ReadRevisionOptions {
  /** Bounds connecting and the query (default 5 s). */
  timeoutMs?: number;
  /** Reuse a pooled connection for a URL instead of opening (and closing) one per read. */
  pools?: DatabasePools;
}

/** Anything that can run a query: a pg.Client, a pooled client or a pg.Pool. */
export type Queryable = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

const DEFAULT_TIMEOUT_MS = 5000;
const UNDEFINED_TABLE = '42P01';
const SELECT_REVISION = 'SELECT version_num FROM alembic_version';

/** The current revision of the metadata database behind a URL or an open client/pool. */
export async function readAlembicRevision(
  target: string | Queryable,
  options: ReadRevisionOptions = {},
): Promise<AlembicRevision> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof target === 'string')
    return options.pools ? readPooled(options.pools, target, timeoutMs) : readFromUrl(target, timeoutMs);
  return readWith(target, timeoutMs, 'the metadata database');
}

async function readFromUrl(url: string, timeoutMs: number): Promise<AlembicRevision> {
  const where = redactConnectionString(url);
  const client = new pg.Client(parseDatabaseUrl(url, { timeoutMs, applicationName: 'airflow-downgrade-guard' }));
  // A connection dropped after connect must not become an unhandled 'error' event.
  client.on('error', () => undefined);
  try {
    await withDeadline(client.connect(), timeoutMs, `connecting to ${where}`);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new AlembicProbeError(`cannot connect to ${where}: ${messageOf(error)}`);
  }
  try {
    return await readWith(client, timeoutMs, where);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function readPooled(pools: DatabasePools, url: string, timeoutMs: number): Promise<AlembicRevision> {
  const where = redactConnectionString(url);
  const client = await connectPooled(pools, url, timeoutMs, where).catch((error: unknown) => {
    throw new AlembicProbeError(`cannot connect to ${where}: ${messageOf(error)}`);
  });
  let broken = false;
  try {
    return await readWith(client, timeoutMs, where);
  } catch (error) {
    broken = true; // a timed-out or failed query may leave the connection unusable: do not reuse it
    throw error;
  } finally {
    client.release(broken);
  }
}

/** A connection from the URL's pool; a connect that outlives the deadline is released when it lands. */
export async function connectPooled(
  pools: DatabasePools,
  url: string,
  timeoutMs: number,
  where: string,
): Promise<pg.PoolClient> {
  const pending = pools.pool(url).connect();
  try {
    return await withDeadline(pending, timeoutMs, `connecting to ${where}`);
  } catch (error) {
    pending.then(
      (late) => late.release(true),
      () => undefined,
    );
    throw error;
  }
}

async function readWith(db: Queryable, timeoutMs: number, where: string): Promise<AlembicRevision> {
  let rows: Array<{ version_num: unknown }>;
  try {
    const result = await withDeadline(
      db.query({ text: SELECT_REVISION, query_timeout: timeoutMs } as pg.QueryConfig),
      timeoutMs,
      `reading alembic_version from ${where}`,
    );
    rows = result.rows as Array<{ version_num: unknown }>;
  } catch (error) {
    if ((error as { code?: string }).code === UNDEFINED_TABLE) return { revision: null };
    throw new AlembicProbeError(`cannot read alembic_version from ${where}: ${messageOf(error)}`);
  }
  return { revision: revisionFromRows(rows, where) };
}

function revisionFromRows(rows: Array<{ version_num: unknown }>, where: string): string | null {
  if (rows.length === 0) return null;
  if (rows.length > 1) {
    const heads = rows.map((row) => describe(row.version_num)).join(', ');
    throw new AlembicProbeError(
      `alembic_version in ${where} has ${rows.length} rows (${heads}); Airflow keeps exactly one`,
    );
  }
  const value = rows[0]?.version_num;
  if (!isValidRevision(value)) {
    throw new AlembicProbeError(`alembic_version in ${where} holds an invalid revision ${describe(value)}`);
  }
  return value;
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 40 ? `${clean.slice(0, 40)}...` : clean);
}

function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  // pg errors never carry the password, but a caller's URL inside a message might.
  return redactConnectionString(text);
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
