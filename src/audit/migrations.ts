// Versioned migrations of the audit store's own schema. Applied at start, in one transaction
// under a transaction-scoped advisory lock, so replicas starting together apply each version once.
import pg from 'pg';

export const DEFAULT_AUDIT_SCHEMA = 'airflow_downgrade_guard';

export interface Migration {
  version: number;
  name: string;
  /** SQL with `{schema}` standing for the quoted schema name. */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'audit records',
    sql: `
      CREATE TABLE {schema}.audit_records (
        id           bigserial PRIMARY KEY,
        at           timestamptz NOT NULL,
        kind         text NOT NULL,
        namespace    text NOT NULL DEFAULT '',
        release      text NOT NULL DEFAULT '',
        operation_id text,
        decision     text,
        step         text,
        outcome      text,
        username     text NOT NULL DEFAULT '',
        dry_run      boolean NOT NULL DEFAULT false,
        record       jsonb NOT NULL,
        request      jsonb
      );
      CREATE INDEX audit_records_at_idx ON {schema}.audit_records (at, id);
      CREATE INDEX audit_records_release_idx ON {schema}.audit_records (release, at);
      CREATE INDEX audit_records_namespace_idx ON {schema}.audit_records (namespace, at);
      CREATE INDEX audit_records_operation_idx ON {schema}.audit_records (operation_id, at) WHERE operation_id IS NOT NULL;
      CREATE INDEX audit_records_decision_idx ON {schema}.audit_records (decision, at) WHERE decision IS NOT NULL;
      CREATE INDEX audit_records_user_idx ON {schema}.audit_records (username, at);
    `,
  },
];

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export class AuditSchemaError extends Error {
  override name = 'AuditSchemaError';
}

/** Validates a schema name (lower-case SQL identifier) and returns it quoted. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new AuditSchemaError(
      `invalid audit schema name ${JSON.stringify(schema)}: use lower-case letters, digits and _ (max 63)`,
    );
  }
  return `"${schema}"`;
}

export interface MigrationResult {
  /** Versions applied by this call, in order (empty when the schema was up to date). */
  applied: number[];
  current: number;
}

/**
 * Brings the audit schema up to the newest version. Safe to call from several processes at
 * once: the advisory lock serialises them and the later ones find nothing left to do.
 */
export async function migrate(
  pool: pg.Pool | pg.Client,
  schema: string = DEFAULT_AUDIT_SCHEMA,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationResult> {
  const quoted = quoteSchema(schema);
  const pooled = pool instanceof pg.Pool;
  const client: pg.ClientBase = pool instanceof pg.Pool ? await pool.connect() : pool;
  try {
    await client.query('BEGIN');
    try {
      const result = await applyPending(client, schema, quoted, migrations);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    if (pooled) (client as pg.PoolClient).release();
  }
}

async function applyPending(
  client: pg.ClientBase,
  schema: string,
  quoted: string,
  migrations: readonly Migration[],
): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`airflow-downgrade-guard:migrate:${schema}`]);
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${quoted}.schema_migrations (
       version integer PRIMARY KEY,
       name text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const done = await client.query<{ version: number }>(`SELECT version FROM ${quoted}.schema_migrations`);
  const appliedBefore = new Set(done.rows.map((row) => row.version));
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (appliedBefore.has(migration.version)) continue;
    await client.query(migration.sql.replaceAll('{schema}', quoted));
    await client.query(`INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [
      migration.version,
      migration.name,
    ]);
    applied.push(migration.version);
  }
  const current = Math.max(0, ...appliedBefore, ...applied);
  return { applied, current };
}
