import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUDIT_SCHEMA, MIGRATIONS, migrate, quoteSchema } from '../../src/audit/migrations.js';
import { insertRecords, queryAudit } from '../../src/audit/store.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { admissionRecord, operatorRecord, stepRecord } from './fixtures.js';

describe('audit store', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase('audit store');
    pool = new pg.Pool({ connectionString: db.url, max: 6 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  describe('migrations', () => {
    it('apply once, record their versions, and are idempotent', async () => {
      const first = await migrate(pool);
      expect(first.applied).toEqual(MIGRATIONS.map((m) => m.version));
      const second = await migrate(pool);
      expect(second).toEqual({ applied: [], current: first.current });
      const rows = await pool.query(`SELECT version, name, applied_at FROM ${DEFAULT_AUDIT_SCHEMA}.schema_migrations`);
      expect(rows.rows).toHaveLength(MIGRATIONS.length);
      expect(rows.rows[0].applied_at).toBeInstanceOf(Date);
    });

    it('are safe when several processes start at once', async () => {
      const schema = 'audit_concurrent';
      const results = await Promise.all([migrate(pool, schema), migrate(pool, schema), migrate(pool, schema)]);
      const applied = results.flatMap((r) => r.applied);
      expect(applied).toEqual(MIGRATIONS.map((m) => m.version)); // each version exactly once
      const count = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.schema_migrations`);
      expect(count.rows[0].n).toBe(MIGRATIONS.length);
    });

    it('create the indexes the review filters use', async () => {
      const result = await pool.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'audit_records'`,
        [DEFAULT_AUDIT_SCHEMA],
      );
      const names = result.rows.map((r) => r.indexname);
      for (const column of ['at', 'release', 'namespace', 'operation', 'decision', 'user']) {
        expect(names).toContain(`audit_records_${column}_idx`);
      }
    });

    it('refuse schema names that are not plain identifiers', () => {
      expect(() => quoteSchema('audit; DROP TABLE x')).toThrow(/invalid audit schema name/);
      expect(() => quoteSchema('Audit')).toThrow(/invalid audit schema name/);
      expect(quoteSchema('my_audit')).toBe('"my_audit"');
    });
  });

  describe('records', () => {
    const admission = admissionRecord();
    const step = stepRecord();
    const action = operatorRecord();
    const dryRun = admissionRecord({
      at: '2025-06-01T11:00:00.000Z',
      requestUid: 'dry-1',
      decision: 'same-head',
      dryRun: true,
      release: 'other',
      namespace: 'ci',
      user: 'bob',
      operationId: undefined,
      fromRevision: undefined,
      toRevision: undefined,
    });
    delete dryRun.operationId;
    delete dryRun.fromRevision;
    delete dryRun.toRevision;

    beforeAll(async () => {
      await migrate(pool);
      await insertRecords(pool, [admission, step, action, dryRun]);
    });

    it('round-trip each kind unchanged, oldest first', async () => {
      const all = await queryAudit(pool);
      expect(all).toEqual([admission, step, action, dryRun]);
    });

    it('keep the raw AdmissionReview request for replay', async () => {
      const [stored] = await queryAudit(pool, { kind: 'admission', release: 'airflow' });
      expect(stored?.kind === 'admission' && stored.request).toEqual(admission.request);
    });

    it('filter by release, namespace, operation, decision, user, kind and time', async () => {
      expect(await queryAudit(pool, { release: 'other' })).toEqual([dryRun]);
      expect(await queryAudit(pool, { namespace: 'data' })).toEqual([admission, step, action]);
      expect(await queryAudit(pool, { operationId: 'op-airflow-1' })).toEqual([admission, step, action]);
      expect(await queryAudit(pool, { decision: 'downgrade' })).toEqual([admission]);
      expect(await queryAudit(pool, { decision: 'retry' })).toEqual([action]);
      expect(await queryAudit(pool, { user: step.actor })).toEqual([step]);
      expect(await queryAudit(pool, { kind: 'operation-step' })).toEqual([step]);
      expect(
        await queryAudit(pool, {
          since: new Date('2025-06-01T10:00:01.000Z'),
          until: new Date('2025-06-01T11:00:00.000Z'),
        }),
      ).toEqual([step, action]);
      expect(await queryAudit(pool, { release: 'airflow', decision: 'same-head' })).toEqual([]);
    });

    it('return the newest records when limited, still oldest first', async () => {
      expect(await queryAudit(pool, { limit: 2 })).toEqual([action, dryRun]);
      await expect(queryAudit(pool, { limit: 0 })).rejects.toThrow(/limit/);
    });

    it('store filterable columns next to the record', async () => {
      const rows = await pool.query(
        `SELECT kind, decision, step, outcome, username, dry_run FROM ${DEFAULT_AUDIT_SCHEMA}.audit_records ORDER BY id`,
      );
      expect(rows.rows).toEqual([
        {
          kind: 'admission',
          decision: 'downgrade',
          step: null,
          outcome: null,
          username: admission.user,
          dry_run: false,
        },
        {
          kind: 'operation-step',
          decision: null,
          step: 'downgrade',
          outcome: 'ok',
          username: step.actor,
          dry_run: false,
        },
        {
          kind: 'operator-action',
          decision: 'retry',
          step: null,
          outcome: 'ok',
          username: 'alice@example.com',
          dry_run: false,
        },
        { kind: 'admission', decision: 'same-head', step: null, outcome: null, username: 'bob', dry_run: true },
      ]);
    });
  });
});
