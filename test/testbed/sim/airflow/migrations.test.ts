import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  MIGRATIONS,
  RELEASE_HEADS,
  parseMigrationChain,
  releaseHeads,
} from '../../../../testbed/sim/airflow/migrations.js';

const FIXTURE = fileURLToPath(new URL('../../../../testbed/sim/airflow/airflow-migrations.json', import.meta.url));
// The shared reference sits beside the repository (../shared/reference from the repository root).
const SHARED = fileURLToPath(new URL('../../../../../shared/reference/airflow-migrations.json', import.meta.url));

describe('the simulated Airflow migration chain (testbed/sim/airflow/airflow-migrations.json)', () => {
  it.runIf(existsSync(SHARED))('is an exact copy of ../shared/reference/airflow-migrations.json', () => {
    expect(readFileSync(FIXTURE, 'utf8')).toBe(readFileSync(SHARED, 'utf8'));
  });

  it('is one linear chain from 2.0.0 to 3.3.0, each release ending at its head', () => {
    expect(MIGRATIONS[0]?.release.text).toBe('2.0.0');
    expect(MIGRATIONS.slice(1).every((m, i) => m.downRevision === MIGRATIONS[i]?.revision)).toBe(true);
    expect(new Set(MIGRATIONS.map((m) => m.revision)).size).toBe(MIGRATIONS.length);
    expect(RELEASE_HEADS.find((row) => row.release.text === '3.0.3')?.head).toBe('fe199e1abd77');
    expect(RELEASE_HEADS.at(-1)?.release.text).toBe('3.3.0');
  });

  it('rejects a file that is not one linear chain, naming the entry', () => {
    const entry = (revision: string, down: string, version: string) => ({
      revision,
      down_revision: down,
      airflow_version: version,
    });
    expect(() => parseMigrationChain({ migrations: [entry('b', 'a', '2.0.0'), entry('d', 'c', '2.0.0')] })).toThrow(
      /d revises c, not the entry before it \(b\)/,
    );
    expect(() => parseMigrationChain({ migrations: [entry('b', 'a', '2.1.0'), entry('c', 'b', '2.0.0')] })).toThrow(
      /c \(2\.0\.0\) is listed after a migration of 2\.1\.0/,
    );
    expect(() => parseMigrationChain({ migrations: [{ revision: 'b' }] })).toThrow(/entry 0 needs/);
    expect(() => parseMigrationChain({})).toThrow(/non-empty list/);
  });

  it('a release head is the last revision that release introduced', () => {
    const chain = parseMigrationChain({
      migrations: [
        { revision: 'a1', down_revision: 'a0', airflow_version: '2.0.0' },
        { revision: 'a2', down_revision: 'a1', airflow_version: '2.0.0' },
        { revision: 'b1', down_revision: 'a2', airflow_version: '2.1.0' },
      ],
    });
    expect(releaseHeads(chain).map((row) => [row.release.text, row.head])).toEqual([
      ['2.0.0', 'a2'],
      ['2.1.0', 'b1'],
    ]);
  });
});
