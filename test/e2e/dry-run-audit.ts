// The audit side of a server-side dry run of the 3.1.0 -> 3.0.2 downgrade, asserted the same way on
// the simulated cluster (test/e2e/dry-run.test.ts) and the real one (test/cluster/dry-run.test.ts):
// exactly one admission record, marked dryRun, carrying the plan's warnings and no operation id, and
// no operation step at all.
import pg from 'pg';
import { expect } from 'vitest';
import type { AdmissionRecord } from '../../src/audit/records.js';
import { queryAudit } from '../../src/audit/store.js';
import { waitFor } from './harness.js';

export async function expectOneDryRunRecord(
  auditUrl: string,
  expected: { fromRevision: string; toRevision: string; user: string; warnings: string[] },
): Promise<void> {
  const pool = new pg.Pool({ connectionString: auditUrl, max: 1 });
  try {
    const records = await waitFor(
      'dry-run audit record',
      async () => {
        const found = (await queryAudit(pool, { kind: 'admission', release: 'airflow' }).catch(
          () => [],
        )) as AdmissionRecord[];
        return found.length > 0 ? found : undefined;
      },
      15_000,
      100,
    );
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      kind: 'admission',
      dryRun: true,
      decision: 'downgrade',
      namespace: 'airflow',
      release: 'airflow',
      objectKind: 'Deployment',
      objectName: 'airflow-scheduler',
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: expected.fromRevision,
      toRevision: expected.toRevision,
      user: expected.user,
    });
    // The id the operation would have had is in the warnings, not on the record: no operation opened.
    expect(records[0]?.operationId).toBeUndefined();
    expect(records[0]?.warnings).toEqual(expected.warnings);
    expect((records[0]?.request as { dryRun?: boolean }).dryRun).toBe(true);
    expect(await queryAudit(pool, { kind: 'operation-step' })).toEqual([]);
  } finally {
    await pool.end();
  }
}
