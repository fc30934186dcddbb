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
