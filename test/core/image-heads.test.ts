import { describe, expect, it } from 'vitest';
import { headForVersion } from '../../src/core/heads.js';
import {
  BUILT_IN_HEADS,
  disagreements,
  headFromMap,
  HEADS_MAP_ARGV,
  imageHeadsSource,
  parseHeadsMap,
} from '../../src/core/image-heads.js';
import { parseAirflowVersion, type AirflowVersion } from '../../src/core/versions.js';
import { openingProblem } from '../../src/coordinator/operation.js';

const v = (text: string): AirflowVersion => parseAirflowVersion(text) as AirflowVersion;

/** As Airflow 3.4 would print it: 3.2+'s squash entry, the known heads, and one past the table. */
const printed = JSON.stringify({
  '2.6.2': '4bc4d934e2bc',
  '2.7.0': '405de8318b3a',
  '3.0.0': '29ce7909c52b',
  '3.3.0': 'd2f4e1b3c5a7',
  '3.4.0': 'f0a1b2c3d4e6',
});

describe('image heads map', () => {
  it('is read by a fixed argv (no shell, nothing from the cluster in it)', () => {
    expect(HEADS_MAP_ARGV[0]).toBe('python');
    expect(HEADS_MAP_ARGV[2]).toContain('_REVISION_HEADS_MAP');
  });

  it('resolves like Airflow 3.1+: the head of the greatest listed version <= V, also past the table', () => {
    const map = parseHeadsMap(`${printed}\n`);
    expect(headFromMap(map, v('3.4.1'))).toBe('f0a1b2c3d4e6');
    expect(headFromMap(map, v('3.3.2'))).toBe('d2f4e1b3c5a7');
    expect(headFromMap(map, v('2.5.0'))).toBeUndefined();
    expect(headFromMap(map, v('3.4.0rc1'))).toBeUndefined();
    expect(headForVersion(v('3.4.0'))).toBeUndefined();
  });

  it('the squash entry is no disagreement; another head for a known version is', () => {
    expect(disagreements(parseHeadsMap(printed))).toEqual([]);
    const other = parseHeadsMap(JSON.stringify({ '3.0.0': '29ce7909c52b', '3.0.3': 'aaaaaaaaaaaa' }));
    expect(disagreements(other)).toEqual([{ version: '3.0.3', table: 'fe199e1abd77', image: 'aaaaaaaaaaaa' }]);
  });

  it.each([
    ['not json', /not JSON/],
    ['[1]', /not a JSON object/],
    ['{}', /empty/],
    ['{"3.0.0rc1": "29ce7909c52b"}', /not a release/],
    ['{"x; rm -rf /": "29ce7909c52b"}', /not a release/],
    ['{"3.0.0": "../../etc"}', /not a revision id/],
    ['{"3.0.0": 5}', /not a revision id/],
  ])('refuses %s', (output, error) => {
    expect(() => parseHeadsMap(output)).toThrow(error);
  });

  it('the anti-tamper check on hold annotations uses the heads actually read', () => {
    const heads = imageHeadsSource(parseHeadsMap(printed), 'sha256:abc');
    const legit = {
      fromVersion: '3.4.0',
      toVersion: '3.3.0',
      fromRevision: 'f0a1b2c3d4e6',
      toRevision: 'd2f4e1b3c5a7',
    };
    expect(openingProblem(legit, heads)).toBeUndefined();
    // The table does not know 3.4.0's head: refused there.
    expect(openingProblem(legit, BUILT_IN_HEADS)).toMatch(/not a known schema head in the built-in table/);
    expect(openingProblem({ ...legit, toRevision: '29ce7909c52b' }, heads)).toMatch(/not the schema head of 3.3.0/);
    expect(openingProblem({ ...legit, fromRevision: 'bbbbbbbbbbbb' }, heads)).toMatch(/not a known schema head/);
    expect(
      openingProblem(
        {
          ...legit,
          fromVersion: '3.3.0',
          toVersion: '3.4.0',
          fromRevision: 'd2f4e1b3c5a7',
          toRevision: 'f0a1b2c3d4e6',
        },
        heads,
      ),
    ).toMatch(/not older/);
  });
});
