// Schema heads as the running image of the newer version knows them: its own `_REVISION_HEADS_MAP`
// (reference/airflow.md), printed by a fixed argv. The built-in table (heads.ts) is the fast path;
// this map is read when a version is past the table, and where both know a version, the image wins.
import { headForVersion, headIndex, isValidRevision } from './heads.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from './versions.js';

/** Printed by every Airflow 2.x/3.x image (the module path is the same in both layouts). */
export const HEADS_MAP_ARGV: readonly string[] = [
  'python',
  '-c',
  'from airflow.utils.db import _REVISION_HEADS_MAP; import json; print(json.dumps(_REVISION_HEADS_MAP))',
];

/**
 * Entries an image lists on purpose with another head than the table: Airflow 3.2+ maps "2.6.2" to
 * the squashed base revision its chain starts from (reference/airflow.md). Not a disagreement.
 */
export const SQUASH_ENTRIES: ReadonlyArray<{ version: string; head: string }> = [
  { version: '2.6.2', head: '4bc4d934e2bc' },
];

/** An image's map, versions in ascending order. */
export interface HeadsMap {
  readonly rows: ReadonlyArray<{ version: AirflowVersion; head: string }>;
}

/** Bound on what is parsed: real maps have a few dozen entries. */
const MAX_ENTRIES = 500;
const MAX_OUTPUT = 64 * 1024;

/** The map from the printed JSON; throws with the reason on anything else (the exec output is untrusted). */
export function parseHeadsMap(output: string): HeadsMap {
  if (output.length > MAX_OUTPUT) throw new Error(`heads map output longer than ${MAX_OUTPUT} characters`);
  let data: unknown;
  try {
    data = JSON.parse(output.trim());
  } catch {
    throw new Error('heads map output is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new Error('heads map output is not a JSON object');
  const entries = Object.entries(data as Record<string, unknown>);
  if (entries.length === 0) throw new Error('heads map is empty');
  if (entries.length > MAX_ENTRIES) throw new Error(`heads map has more than ${MAX_ENTRIES} entries`);
  const rows = entries.map(([key, head]) => {
    const version = parseAirflowVersion(key);
    if (!version || version.pre) throw new Error(`heads map key ${JSON.stringify(key.slice(0, 40))} is not a release`);
    if (!isValidRevision(head)) throw new Error(`heads map value for ${key} is not a revision id`);
    return { version, head };
  });
  rows.sort((a, b) => compareVersions(a.version, b.version));
  return { rows };
}

/** Head of the greatest listed version <= V (Airflow 3.1+'s own resolution); undefined below the map or past its newest entry's version when `upTo` says the image is older. */
export function headFromMap(map: HeadsMap, version: AirflowVersion): string | undefined {
  if (version.pre) return undefined;
  let head: string | undefined;
  for (const row of map.rows) {
    if (compareVersions(row.version, version) <= 0) head = row.head;
    else break;
  }
  return head;
}

/** Position of a head in the map's chain (versions ascending), or -1. The squash base sorts as its key. */
export function mapHeadIndex(map: HeadsMap, revision: string): number {
  return map.rows.findIndex((row) => row.head === revision);
}

function isSquashEntry(version: AirflowVersion, head: string): boolean {
  return SQUASH_ENTRIES.some((s) => s.version === version.text && s.head === head);
}

/** Versions both know with different heads (the image wins); squash entries are not disagreements. */
export function disagreements(map: HeadsMap): Array<{ version: string; table: string; image: string }> {
  const out: Array<{ version: string; table: string; image: string }> = [];
  for (const row of map.rows) {
    const table = headForVersion(row.version);
    if (table !== undefined && table !== row.head && !isSquashEntry(row.version, row.head))
      out.push({ version: row.version.text, table, image: row.head });
  }
  return out;
}

/** Which heads an operation's revisions are checked against: the image's map when read, else the table. */
export interface HeadsSource {
  headFor(version: AirflowVersion): string | undefined;
  /** Order in the chain; -1 when unknown. */
  indexOf(revision: string): number;
  /** For messages: 'the built-in table' or 'the heads map of image sha256:…'. */
  readonly name: string;
}

export const BUILT_IN_HEADS: HeadsSource = {
  headFor: headForVersion,
  indexOf: headIndex,
  name: 'the built-in table',
};

export function imageHeadsSource(map: HeadsMap, image: string): HeadsSource {
  return {
    headFor: (version) => headFromMap(map, version),
    indexOf: (revision) => mapHeadIndex(map, revision),
    name: `the heads map of image ${image}`,
  };
}

/** compareToCurrent (decide.ts) on an image's own map, for versions the built-in table cannot place. */
export type MapComparison =
  | { kind: 'forward' | 'same-head' | 'unknown'; reason: string }
  | { kind: 'downgrade'; reason: string; fromVersion: string; toHead: string };

/**
 * The target against the database's revision, both placed by `map` (the image that runs the
 * revision, so it lists every version up to its own): a target newer than any version it lists can
 * only move the schema forward. `fromHint`: the version admission believed current, kept when the
 * map gives it the revision.
 */
export function compareWithMap(
  map: HeadsMap,
  name: string,
  target: AirflowVersion,
  revision: string,
  fromHint?: AirflowVersion,
): MapComparison {
  const current = mapHeadIndex(map, revision);
  if (current < 0) return { kind: 'unknown', reason: `database revision ${revision} is not in ${name}` };
  const newest = map.rows.at(-1)?.version;
  if (newest && compareVersions(target, newest) > 0)
    return {
      kind: 'forward',
      reason: `${target.text} is newer than any version in ${name}: schema can only move forward`,
    };
  const toHead = headFromMap(map, target);
  if (toHead === undefined) return { kind: 'unknown', reason: `${name} lists no head for ${target.text}` };
  const to = mapHeadIndex(map, toHead);
  const fromVersion =
    fromHint && headFromMap(map, fromHint) === revision
      ? fromHint.text
      : (map.rows[current] as { version: AirflowVersion }).version.text;
  if (to === current)
    return { kind: 'same-head', reason: `${fromVersion} -> ${target.text}: same schema head ${toHead} (${name})` };
  if (to > current)
    return {
      kind: 'forward',
      reason: `${fromVersion} -> ${target.text}: schema moves forward ${revision} -> ${toHead} (${name})`,
    };
  return {
    kind: 'downgrade',
    reason: `${fromVersion} -> ${target.text}: schema head ${revision} -> ${toHead} (${name})`,
    fromVersion,
    toHead,
  };
}
