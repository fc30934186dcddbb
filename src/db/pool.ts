// Connection reuse for the coordinator's metadata probes: one small pg.Pool per metadata URL, so a
// step's schema read costs a query, not a TCP + authentication handshake (which, with many releases
// downgrading at once, queued behind each other). Bounded: few connections per URL, idle ones
// closed after a while, the least recently used pool closed when there are too many URLs.
import pg from 'pg';
import { parseDatabaseUrl } from './connection.js';

export interface DatabasePoolsOptions {
  /** Connections per metadata URL (default 2: a lock check and a revision read may overlap). */
  maxConnections?: number;
  /** An idle connection is closed after this long (default 10 s). */
  idleTimeoutMs?: number;
  /** Pools kept at once; the least recently used one is closed past this (default 32). */
  maxPools?: number;
  /** Bounds connecting and each statement (default 5 s). */
  timeoutMs?: number;
}

export class DatabasePoolError extends Error {
  override name = 'DatabasePoolError';
}

export class DatabasePools {
  private readonly pools = new Map<string, pg.Pool>();
  private closed = false;
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private readonly maxPools: number;
  readonly timeoutMs: number;

  constructor(options: DatabasePoolsOptions = {}) {
    this.maxConnections = positive(options.maxConnections ?? 2, 'maxConnections');
    this.idleTimeoutMs = positive(options.idleTimeoutMs ?? 10_000, 'idleTimeoutMs');
    this.maxPools = positive(options.maxPools ?? 32, 'maxPools');
    this.timeoutMs = positive(options.timeoutMs ?? 5_000, 'timeoutMs');
  }

  get size(): number {
    return this.pools.size;
  }

  /** The pool for a URL (created on first use; parse errors are thrown, redacted, by parseDatabaseUrl). */
  pool(url: string): pg.Pool {
    if (this.closed) throw new DatabasePoolError('database pools are closed');
    const existing = this.pools.get(url);
    if (existing) {
      // Map order is the LRU order: move to the newest end.
      this.pools.delete(url);
      this.pools.set(url, existing);
      return existing;
    }
    const pool = new pg.Pool({
      ...parseDatabaseUrl(url, { timeoutMs: this.timeoutMs, applicationName: 'airflow-downgrade-guard' }),
      max: this.maxConnections,
      idleTimeoutMillis: this.idleTimeoutMs,
      // Waiting for a free connection counts against the same bound as connecting.
      connectionTimeoutMillis: this.timeoutMs,
      // Idle connections never keep a one-shot process alive.
      allowExitOnIdle: true,
    });
    // A connection dropped while idle (server restart, network) must not be an unhandled 'error'.
    pool.on('error', () => undefined);
    this.pools.set(url, pool);
    while (this.pools.size > this.maxPools) this.evictOldest();
    return pool;
  }

  /** Drops a URL's pool, e.g. after its database failed: the next use connects afresh. */
  async discard(url: string): Promise<void> {
    const pool = this.pools.get(url);
    if (!pool) return;
    this.pools.delete(url);
    await pool.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }

  private evictOldest(): void {
    const oldest = this.pools.keys().next();
    if (oldest.done) return;
    const pool = this.pools.get(oldest.value);
    this.pools.delete(oldest.value);
    void pool?.end().catch(() => undefined);
  }
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new DatabasePoolError(`${what} must be a positive number, got ${value}`);
  return value;
}
