// The guard's built-in head table (src/core/heads.ts) checked against Airflow's real migration
// chain (testbed/sim/airflow/airflow-migrations.json), which the simulated Airflow also runs.
import { describe, expect, it } from 'vitest';
import { REVISION_HEADS, headForVersion, headIndex, revisionChain } from '../../src/core/heads.js';
import { parseAirflowVersion, type AirflowVersion } from '../../src/core/versions.js';
import { MIGRATIONS, RELEASE_HEADS } from '../../testbed/sim/airflow/migrations.js';

function version(text: string): AirflowVersion {
  return parseAirflowVersion(text) as AirflowVersion;
}

describe('built-in head table against the migration chain', () => {
  it('lists exactly the releases that introduced migrations, each with its last revision', () => {
    expect(REVISION_HEADS.map(([v, head]) => [v, head])).toEqual(
      RELEASE_HEADS.map((row) => [row.release.text, row.head]),
    );
  });

  it('gives every release listed in the chain the head the chain ends at for it', () => {
    for (const row of RELEASE_HEADS) expect(headForVersion(row.release), row.release.text).toBe(row.head);
  });

  it('gives a patch release without migrations the head of the release before it', () => {
    for (const [i, row] of RELEASE_HEADS.entries()) {
      const next = RELEASE_HEADS[i + 1];
      const patch = version(`${row.release.major}.${row.release.minor}.${row.release.patch + 1}`);
      if (next && next.release.text === patch.text) continue;
      expect(headForVersion(patch), patch.text).toBe(row.head);
    }
  });

  it('orders its heads as the chain does', () => {
    const position = new Map(MIGRATIONS.map((m, i) => [m.revision, i]));
    const chain = revisionChain();
    for (let i = 1; i < chain.length; i += 1) {
      expect(position.get(chain[i] as string)).toBeGreaterThan(position.get(chain[i - 1] as string) as number);
      expect(headIndex(chain[i] as string)).toBe(i);
    }
  });
});
