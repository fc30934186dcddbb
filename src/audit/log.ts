// The audit log as the admission path and the coordinator see it: `append` logs the record at
// once and queues it; a background writer inserts queued records in batches. While the store is
// unreachable records stay queued (bounded, oldest dropped first and counted) and the writer
// retries with backoff, writing them in order when the store returns. `append` never waits on
// I/O and never throws.
import pg from 'pg';
import type { Logger } from 'pino';
import { parseDatabaseUrl } from '../db/connection.js';
import { DEFAULT_AUDIT_SCHEMA, migrate, quoteSchema } from './migrations.js';
import type { AuditRecord, AuditRecordInput } from './records.js';
import { redactRecord, redactText } from './redact.js';
import { insertRecords, isDataError, MAX_BATCH, PreparedJson, toJsonb } from './store.js';

export interface AuditStats {
  /** Records queued or being written. */
  buffered: number;
  written: number;
  /** Records lost to the buffer bound (or appended after close). */
  dropped: number;
  lastError?: string;
  /** Whether the last attempt to reach the store succeeded. */
  storeUp: boolean;
}

export interface AuditLogOptions {
  /** A pool to use (not closed by `close()`), or a URL for a pool the log owns. */
  pool?: pg.Pool;
  databaseUrl?: string;
  schema?: string;
  logger: Logger;
  /** Bound of the in-memory queue (besides the batch being written); beyond it the oldest records are dropped. Default 10 000. */
  maxBuffered?: number;
  /** Bound of the serialised AdmissionReview requests held while the store is away. Default 64 MiB. */
  maxBufferedBytes?: number;
  /** Records per INSERT. Default 500. */
  batchSize?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Minimum interval between "records dropped" warnings. Default 30 s. */
  dropWarningIntervalMs?: number;
  /** Apply schema migrations before the first write. Default true. */
  migrate?: boolean;
}

/**
 * FIFO of records waiting for the store: array plus head index (compacted now and then, so
 * shifts stay O(1)). It tracks the bytes of the serialised requests it holds and how many of
 * its newest records are not prepared (redacted and serialised) yet.
 */
class RecordQueue {
  private items: Array<AuditRecord | undefined> = [];
  private head = 0;
  bytes = 0;
  unprepared = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(record: AuditRecord): void {
    this.items.push(record);
    this.unprepared++;
  }

  /** Removes up to `count` of the oldest records and returns them. */
  shift(count: number): AuditRecord[] {
    const n = Math.min(count, this.length);
    const removed = this.items.slice(this.head, this.head + n) as AuditRecord[];
    for (let i = 0; i < n; i++) this.items[this.head + i] = undefined;
    this.head += n;
    for (const record of removed) this.bytes -= preparedBytes(record);
    this.unprepared = Math.min(this.unprepared, this.length);
    this.compact();
    return removed;
  }

  /** Puts an unwritten (prepared) batch back in front, keeping the order. */
  putBack(batch: AuditRecord[]): void {
    this.items = (batch as Array<AuditRecord | undefined>).concat(this.items.slice(this.head));
    this.head = 0;
    for (const record of batch) this.bytes += preparedBytes(record);
  }

  /** Prepares the records appended since the last call. */
  prepareNewest(): void {
    for (let i = this.items.length - this.unprepared; i < this.items.length; i++) {
      const prepared = prepareRecord(this.items[i] as AuditRecord);
      this.items[i] = prepared;
      this.bytes += preparedBytes(prepared);
    }
    this.unprepared = 0;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Redacted, with the raw request serialised: what waits in memory is small and final. Never
 * throws: a request JSON cannot hold is replaced by a note saying so; a record that cannot even
 * be redacted is returned as is, and the writer drops it as unwritable.
 */
function prepareRecord(record: AuditRecord): AuditRecord {
  if (record.kind === 'admission' && record.request instanceof PreparedJson) return record;
  let redacted: AuditRecord;
  try {
    redacted = redactRecord(record);
  } catch {
    return record;
  }
  if (redacted.kind !== 'admission' || redacted.request === undefined) return redacted;
  let text: string;
  try {
    text = toJsonb(redacted.request);
  } catch (error) {
    text = JSON.stringify({ unserializable: errorMessage(error) });
  }
  return { ...redacted, request: new PreparedJson(text) };
}

function preparedBytes(record: AuditRecord): number {
  return record.kind === 'admission' && record.request instanceof PreparedJson ? record.request.text.length : 0;
}

function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const text = typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
  return redactText(text);
}

function withoutRequest(record: AuditRecord): Omit<AuditRecord, 'request'> {
  if (record.kind !== 'admission' || record.request === undefined) return record;
  const { request: _request, ...rest } = record;
  return rest;
}

export class AuditLog {
  private readonly queue = new RecordQueue();
  private readonly logger: Logger;
  private readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly maxBuffered: number;
  private readonly batchSize: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly dropWarningIntervalMs: number;
  private migrated: boolean;
  private readonly maxBufferedBytes: number;
  private prepareScheduled = false;
  private inFlight = 0;
  private writing = false;
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  private retryDelayMs: number;
  private closed = false;
  private written = 0;
  private dropped = 0;
  private droppedSinceWarning = 0;
  private lastDropWarningAt = 0;
  private lastError: string | undefined;
  private storeUp = false;
  private wasDown = false;
  private drainWaiters: Array<() => void> = [];

  constructor(options: AuditLogOptions) {
    this.logger = options.logger;
    this.schema = options.schema ?? DEFAULT_AUDIT_SCHEMA;
    quoteSchema(this.schema); // fail at construction on a bad name, not in the writer
    this.maxBuffered = positiveInteger('maxBuffered', options.maxBuffered ?? 10_000);
    this.maxBufferedBytes = positiveInteger('maxBufferedBytes', options.maxBufferedBytes ?? 64 * 1024 * 1024);
    this.batchSize = Math.min(positiveInteger('batchSize', options.batchSize ?? 500), MAX_BATCH);
    this.retryMinMs = options.retryMinMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 5_000;
    this.retryDelayMs = this.retryMinMs;
    this.dropWarningIntervalMs = options.dropWarningIntervalMs ?? 30_000;
    this.migrated = options.migrate === false;
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else if (options.databaseUrl) {
      this.pool = new pg.Pool(auditPoolConfig(options.databaseUrl));
      this.ownsPool = true;
    } else {
      throw new Error('AuditLog needs a pool or a databaseUrl');
    }
    // Idle connections die when Postgres restarts; the pool reports it here and reconnects later.
    this.pool.on('error', (error) => this.logger.debug({ err: errorMessage(error) }, 'audit store connection lost'));
  }

  /** Applies migrations now; false (and keeps retrying in the background) when the store is down. */
  async start(): Promise<boolean> {
    try {
      await this.ensureMigrated();
      this.markUp();
      return true;
    } catch (error) {
      this.markDown(error);
      this.schedule(this.retryDelayMs);
      return false;
    }
  }

  /** Logs the record and queues it for the store. Never throws, never waits. */
  append(input: AuditRecordInput): void {
    try {
      const record = this.normalise(input);
      this.logger.info(redactRecord(withoutRequest(record) as AuditRecord), 'audit');
      if (this.closed) {
        this.countDropped(1);
        this.logger.error({ auditStats: this.stats() }, 'audit record appended after close; not stored');
        return;
      }
      this.queue.push(record);
      if (this.queue.length > this.maxBuffered)
        this.countDropped(this.queue.shift(this.queue.length - this.maxBuffered).length, true);
      this.schedulePrepare();
      if (!this.writing && this.scheduled === undefined) this.schedule(0);
    } catch (error) {
      // A record we cannot even log (bad timestamp, a getter that throws): count it, never fail the caller.
      this.lastError = errorMessage(error);
      this.countDropped(1);
      try {
        this.logger.error({ err: this.lastError }, 'audit record rejected; dropped it');
      } catch {
        // the logger itself failed: the drop is still counted in stats and metrics
      }
    }
  }

  stats(): AuditStats {
    const stats: AuditStats = {
      buffered: this.queue.length + this.inFlight,
      written: this.written,
      dropped: this.dropped,
      storeUp: this.storeUp,
    };
    if (this.lastError !== undefined) stats.lastError = this.lastError;
    return stats;
  }

  /** Writes what is queued, waiting at most timeoutMs; true when nothing is left unwritten. */
  async flush(timeoutMs = 5_000): Promise<boolean> {
    if (this.isDrained()) return true;
    if (!this.writing) this.schedule(0, true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((waiter) => waiter !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.drainWaiters.push(done);
    });
  }

  /** Flushes (bounded by timeoutMs), logs the final stats, stops the writer, ends an owned pool. */
  async close(timeoutMs = 5_000): Promise<AuditStats> {
    const flushed = await this.flush(timeoutMs);
    this.closed = true;
    this.cancelScheduled();
    const stats = this.stats();
    const unwritten = flushed ? 0 : stats.buffered;
    if (unwritten > 0)
      this.logger.error({ auditStats: stats }, `audit log closed with ${unwritten} unwritten record(s)`);
    else this.logger.info({ auditStats: stats }, 'audit log closed');
    if (this.ownsPool) await this.pool.end().catch(() => undefined);
    return stats;
  }

  private normalise(input: AuditRecordInput): AuditRecord {
    const at = input.at === undefined ? new Date() : input.at;
    const iso = typeof at === 'string' ? at : at.toISOString(); // throws on an invalid Date
    if (typeof at === 'string' && Number.isNaN(Date.parse(at)))
      throw new RangeError(`invalid audit timestamp ${JSON.stringify(at)}`);
    return { ...input, at: iso } as AuditRecord;
  }

  private countDropped(count: number, overflow = false): void {
    if (count <= 0) return;
    this.dropped += count;
    if (!overflow) return; // rejected records are logged one by one where they are dropped
    this.droppedSinceWarning += count;
    const now = Date.now();
    if (now - this.lastDropWarningAt < this.dropWarningIntervalMs) return;
    this.lastDropWarningAt = now;
    this.logger.warn(
      { auditStats: this.stats(), droppedSinceLastWarning: this.droppedSinceWarning },
      `audit buffer full (${this.maxBuffered} records): dropped the oldest records`,
    );
    this.droppedSinceWarning = 0;
  }

  private isDrained(): boolean {
    return this.queue.length === 0 && this.inFlight === 0;
  }

  private cancelScheduled(): void {
    if (this.scheduled === undefined) return;
    clearTimeout(this.scheduled as NodeJS.Timeout);
    clearImmediate(this.scheduled as NodeJS.Immediate);
    this.scheduled = undefined;
  }

  private schedule(delayMs: number, replace = false): void {
    if (this.closed) return;
    if (this.scheduled !== undefined) {
      if (!replace) return;
      this.cancelScheduled();
    }
    const run = (): void => {
      this.scheduled = undefined;
      void this.drain();
    };
    // Unref'd: a pending write never keeps the process alive; shutdown calls flush() instead.
    this.scheduled = delayMs <= 0 ? setImmediate(run).unref() : setTimeout(run, delayMs).unref();
  }

  private async ensureMigrated(): Promise<void> {
    if (this.migrated) return;
    const result = await migrate(this.pool, this.schema);
    this.migrated = true;
    if (result.applied.length > 0) {
      this.logger.info({ schema: this.schema, applied: result.applied }, 'audit store schema migrated');
    }
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        if (!(await this.writeOneBatch())) {
          this.schedule(this.retryDelayMs);
          this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.retryMaxMs);
          return;
        }
      }
      this.retryDelayMs = this.retryMinMs;
      this.notifyDrained();
    } finally {
      this.writing = false;
    }
  }

  private async writeOneBatch(): Promise<boolean> {
    const batch = this.queue.shift(this.batchSize).map(prepareRecord);
    this.inFlight = batch.length;
    try {
      await this.ensureMigrated();
      await insertRecords(this.pool, batch, this.schema);
      this.written += batch.length;
      this.markUp();
      return true;
    } catch (error) {
      if (isUnwritable(error)) return await this.writeOneByOne(batch);
      this.putBack(batch);
      this.markDown(error);
      return false;
    } finally {
      this.inFlight = 0;
    }
  }

  // A batch the store refused as data: write its records singly so one bad record (say, an
  // unparsable timestamp) is dropped and reported instead of blocking everything behind it.
  private async writeOneByOne(batch: AuditRecord[]): Promise<boolean> {
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i] as AuditRecord;
      try {
        await insertRecords(this.pool, [record], this.schema);
        this.written += 1;
      } catch (error) {
        if (!isUnwritable(error)) {
          this.putBack(batch.slice(i));
          this.markDown(error);
          return false;
        }
        this.lastError = errorMessage(error);
        this.logger.error(
          { err: this.lastError, recordKind: record.kind, at: record.at },
          'audit store refused a record; dropped it',
        );
        this.countDropped(1);
      }
    }
    this.markUp();
    return true;
  }

  private putBack(batch: AuditRecord[]): void {
    this.queue.putBack(batch);
    this.enforceBounds();
  }

  // Drops the oldest records while the queue holds more records or request bytes than allowed.
  private enforceBounds(): void {
    let dropped = 0;
    const excess = this.queue.length - this.maxBuffered;
    if (excess > 0) dropped += this.queue.shift(excess).length;
    while (this.queue.bytes > this.maxBufferedBytes && this.queue.length > 0) dropped += this.queue.shift(1).length;
    this.countDropped(dropped, true);
  }

  // Prepares new records off the caller's path, so a long outage holds compact, redacted text
  // rather than the parsed AdmissionReviews, and the byte bound can be enforced.
  private schedulePrepare(): void {
    if (this.prepareScheduled) return;
    this.prepareScheduled = true;
    setImmediate(() => {
      this.prepareScheduled = false;
      try {
        this.queue.prepareNewest();
      } catch (error) {
        this.lastError = errorMessage(error);
      }
      this.enforceBounds();
    }).unref();
  }

  private markUp(): void {
    this.storeUp = true;
    if (!this.wasDown) return;
    this.wasDown = false;
    this.logger.info({ auditStats: this.stats() }, 'audit store reachable again: writing buffered records');
  }

  private markDown(error: unknown): void {
    this.lastError = errorMessage(error);
    this.storeUp = false;
    if (this.wasDown) return;
    this.wasDown = true;
    this.logger.warn(
      { auditStats: this.stats() },
      `audit store unreachable, buffering up to ${this.maxBuffered} records: ${this.lastError}`,
    );
  }

  private notifyDrained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter();
  }
}

/** Pool settings for the audit store: few connections, and fail fast so the writer retries. */
export function auditPoolConfig(databaseUrl: string): pg.PoolConfig {
  const config = parseDatabaseUrl(databaseUrl, {
    timeoutMs: 15_000,
    applicationName: 'airflow-downgrade-guard-audit',
    role: 'audit',
  });
  return {
    ...config,
    connectionTimeoutMillis: Math.min(config.connectionTimeoutMillis ?? 5_000, 5_000),
    max: 2,
    idleTimeoutMillis: 30_000,
  };
}

// Refused data (SQLSTATE class 22/23) or a value JSON cannot represent (cycles, BigInt).
function isUnwritable(error: unknown): boolean {
  return isDataError(error) || error instanceof TypeError;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export function createAuditLog(options: AuditLogOptions): AuditLog {
  return new AuditLog(options);
}
