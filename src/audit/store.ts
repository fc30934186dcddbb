// Postgres access for audit records: batched multi-row inserts and the filtered query behind
// `airflow-downgrade-guard audit`.
import type pg from 'pg';
import { DEFAULT_AUDIT_SCHEMA, quoteSchema } from './migrations.js';
import { RECORD_KINDS, recordDecision, recordUser, type AuditRecord, type RecordKind } from './records.js';

const COLUMNS = [
  'at',
  'kind',
  'namespace',
  'release',
  'operation_id',
  'decision',
  'step',
  'outcome',
  'username',
  'dry_run',
  'record',
  'request',
] as const;

// Postgres allows 65535 bind parameters per statement.
export const MAX_BATCH = Math.floor(65535 / COLUMNS.length);

function rowValues(record: AuditRecord): unknown[] {
  const { request, ...rest } = record as AuditRecord & { request?: unknown };
  return [
    record.at,
    record.kind,
    record.namespace,
    record.release,
    record.operationId ?? null,
    recordDecision(record) ?? null,
    record.kind === 'operation-step' ? record.step : null,
    record.kind === 'admission' ? null : (record.outcome ?? null),
    recordUser(record),
    record.kind === 'admission' ? record.dryRun : false,
    toJsonb(rest),
    request === undefined ? null : toJsonb(request),
  ];
}

// jsonb refuses the NUL character, which exec output can contain: store U+FFFD instead.
// (An escaped backslash before `u0000` is text, not a NUL, hence the even-backslash lookbehind.)
const JSON_NUL = /(?<!\\)((?:\\\\)*)\\u0000/g;

/** A value already serialised by toJsonb (kept as text while it waits in memory). */
export class PreparedJson {
  constructor(readonly text: string) {}
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

/** JSON text Postgres accepts as jsonb. */
export function toJsonb(value: unknown): string {
  if (value instanceof PreparedJson) return value.text;
  const text = JSON.stringify(value);
  return text.includes('\\u0000') ? text.replace(JSON_NUL, '$1\\ufffd') : text;
}

/** Whether Postgres refused the data itself (retrying the same rows cannot succeed). */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23)/.test(code);
}

/** Writes records in one multi-row INSERT, in the given order (ids grow with it). */
export async function insertRecords(
  db: pg.Pool | pg.ClientBase,
  records: readonly AuditRecord[],
  schema: string = DEFAULT_AUDIT_SCHEMA,
): Promise<void> {
  if (records.length === 0) return;
  if (records.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} records per insert`);
  const params: unknown[] = [];
  const tuples: string[] = [];
  for (const record of records) {
    const values = rowValues(record);
    const base = params.length;
    tuples.push(`(${values.map((_, i) => `$${base + i + 1}`).join(', ')})`);
    params.push(...values);
  }
  const sql = `INSERT INTO ${quoteSchema(schema)}.audit_records (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`;
  await db.query(sql, params);
}

export interface AuditQuery {
  release?: string;
  namespace?: string;
  operationId?: string;
  /** Admission decision or operator action (retry/abort/break-glass). */
  decision?: string;
  /** User of admissions and operator actions, actor of operation steps. */
  user?: string;
  kind?: RecordKind;
  since?: Date;
  until?: Date;
  /** The newest `limit` matching records are returned (default 1000), oldest first. */
  limit?: number;
  schema?: string;
}

export const DEFAULT_QUERY_LIMIT = 1000;
export const MAX_QUERY_LIMIT = 100_000;

export interface StoredAuditRecord {
  id: number;
  record: AuditRecord;
}

function whereClause(query: AuditQuery): { sql: string; params: unknown[] } {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const add = (column: string, op: string, value: unknown): void => {
    params.push(value);
    conditions.push(`${column} ${op} $${params.length}`);
  };
  if (query.release !== undefined) add('release', '=', query.release);
  if (query.namespace !== undefined) add('namespace', '=', query.namespace);
  if (query.operationId !== undefined) add('operation_id', '=', query.operationId);
  if (query.decision !== undefined) add('decision', '=', query.decision);
  if (query.user !== undefined) add('username', '=', query.user);
  if (query.kind !== undefined) {
    if (!RECORD_KINDS.includes(query.kind)) throw new RangeError(`unknown record kind ${JSON.stringify(query.kind)}`);
    add('kind', '=', query.kind);
  }
  if (query.since !== undefined) add('at', '>=', query.since);
  if (query.until !== undefined) add('at', '<', query.until);
  return { sql: conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '', params };
}

function queryLimit(limit: number | undefined): number {
  const value = limit ?? DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(value) || value < 1 || value > MAX_QUERY_LIMIT) {
    throw new RangeError(`limit must be an integer from 1 to ${MAX_QUERY_LIMIT}`);
  }
  return value;
}

/** Matching records with their store ids, oldest first. */
export async function queryAuditRows(
  db: pg.Pool | pg.ClientBase,
  query: AuditQuery = {},
): Promise<StoredAuditRecord[]> {
  const schema = quoteSchema(query.schema ?? DEFAULT_AUDIT_SCHEMA);
  const limit = queryLimit(query.limit);
  const where = whereClause(query);
  const result = await db.query<{ id: string; record: Record<string, unknown>; request: unknown }>(
    `SELECT id, record, request FROM ${schema}.audit_records ${where.sql}
     ORDER BY at DESC, id DESC LIMIT ${limit}`,
    where.params,
  );
  return result.rows.reverse().map((row) => ({
    id: Number(row.id),
    record: (row.request === null ? row.record : { ...row.record, request: row.request }) as unknown as AuditRecord,
  }));
}

/** Matching records, oldest first. */
export async function queryAudit(db: pg.Pool | pg.ClientBase, query: AuditQuery = {}): Promise<AuditRecord[]> {
  return (await queryAuditRows(db, query)).map((row) => row.record);
}
