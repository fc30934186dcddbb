import { describe, expect, it } from 'vitest';
import { headForVersion } from '../../src/core/heads.js';
import {
  BUILT_IN_HEADS,
  compareWithMap,
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

describe('a target placed by the map of the image running the database revision', () => {
  /** As Airflow 3.5 would print it: 3.4.0 and 3.5.0 both past the table. */
  const newer = parseHeadsMap(JSON.stringify({ ...JSON.parse(printed), '3.5.0': 'f0a1b2c3d4f2' }));
  const name = 'the heads map of image sha256:x';

  it("an older head than the revision is a downgrade; the from-version is the map's (or the hint it confirms)", () => {
    expect(compareWithMap(newer, name, v('3.4.0'), 'f0a1b2c3d4f2')).toEqual({
      kind: 'downgrade',
      fromVersion: '3.5.0',
      toHead: 'f0a1b2c3d4e6',
      reason: `3.5.0 -> 3.4.0: schema head f0a1b2c3d4f2 -> f0a1b2c3d4e6 (${name})`,
    });
    expect(compareWithMap(newer, name, v('3.3.0'), 'f0a1b2c3d4f2', v('3.5.1'))).toMatchObject({
      kind: 'downgrade',
      fromVersion: '3.5.1',
      toHead: 'd2f4e1b3c5a7',
    });
    // A hint the map gives another head is not believed.
    expect(compareWithMap(newer, name, v('3.3.0'), 'f0a1b2c3d4f2', v('3.4.0'))).toMatchObject({ fromVersion: '3.5.0' });
  });

  it('the same head, a later head, or a version newer than any listed: no downgrade', () => {
    expect(compareWithMap(newer, name, v('3.4.2'), 'f0a1b2c3d4e6').kind).toBe('same-head');
    expect(compareWithMap(newer, name, v('3.5.0'), 'f0a1b2c3d4e6').kind).toBe('forward');
    expect(compareWithMap(newer, name, v('3.6.0'), 'f0a1b2c3d4f2')).toEqual({
      kind: 'forward',
      reason: `3.6.0 is newer than any version in ${name}: schema can only move forward`,
    });
  });

  it('a revision the map does not list, or a target below it or a pre-release: unknown', () => {
    expect(compareWithMap(newer, name, v('3.4.0'), 'ffffffffffff')).toEqual({
      kind: 'unknown',
      reason: `database revision ffffffffffff is not in ${name}`,
    });
    expect(compareWithMap(newer, name, v('2.5.0'), 'f0a1b2c3d4f2').kind).toBe('unknown');
    expect(compareWithMap(newer, name, v('3.4.0rc1'), 'f0a1b2c3d4f2')).toMatchObject({
      kind: 'unknown',
      reason: `${name} lists no head for 3.4.0rc1`,
    });
  });
});
