// Airflow's schema heads per release (reference/airflow.md, `_REVISION_HEADS_MAP`), and the same
// resolution Airflow 3.1+ applies to `--to-version`: the head of the greatest listed version <= V.
// Add a row whenever Airflow releases a migration.
import { compareVersions, parseAirflowVersion, type AirflowVersion } from './versions.js';

/** First release that introduced each head, oldest first. */
export const REVISION_HEADS: ReadonlyArray<readonly [version: string, head: string]> = [
  ['2.0.0', 'e959f08ac86c'],
  ['2.0.1', '82b7c48c147f'],
  ['2.0.2', '2e42bb497a22'],
  ['2.1.0', 'a13f7613ad25'],
  ['2.1.3', '97cdd93827b8'],
  ['2.1.4', 'ccde3e26fe78'],
  ['2.2.0', '7b2661a43ba3'],
  ['2.2.3', 'be2bfac3da23'],
  ['2.2.4', '587bdf053233'],
  ['2.3.0', 'b1b348e02d07'],
  ['2.3.1', '1de7bc13c950'],
  ['2.3.2', '3c94c427fdf6'],
  ['2.3.3', 'f5fcbda3e651'],
  ['2.4.0', 'ecb43d2a1842'],
  ['2.4.2', 'b0d31815b5a6'],
  ['2.4.3', 'e07f49787c9d'],
  ['2.5.0', '290244fb8b83'],
  ['2.6.0', '98ae134e6fff'],
  ['2.6.2', 'c804e5c76e3e'],
  ['2.7.0', '405de8318b3a'],
  ['2.8.0', '10b52ebd31f7'],
  ['2.8.1', '88344c1d9134'],
  ['2.9.0', '1949afb29106'],
  ['2.9.2', '686269002441'],
  ['2.10.0', '22ed7efa9da2'],
  ['2.10.3', '5f2621c13b39'],
  ['3.0.0', '29ce7909c52b'],
  ['3.0.3', 'fe199e1abd77'],
  ['3.1.0', 'cc92b33c6709'],
  ['3.1.8', '509b94a1042d'],
  ['3.2.0', '1d6611b6ab7c'],
  ['3.3.0', 'd2f4e1b3c5a7'],
];

const PARSED_HEADS = REVISION_HEADS.map(([version, head]) => ({
  version: parseAirflowVersion(version) as AirflowVersion,
  head,
}));

/** Revision ids are opaque: up to 32 safe characters (the column is VARCHAR(32)). */
const REVISION_PATTERN = /^[0-9a-z_]{1,32}$/;

export function isValidRevision(revision: unknown): revision is string {
  return typeof revision === 'string' && REVISION_PATTERN.test(revision);
}

/**
 * The newest release the table was checked against. A later version may have added a migration
 * we do not know, so its head is unknown rather than guessed.
 */
export const NEWEST_KNOWN_VERSION = '3.3.2';

const NEWEST_KNOWN = parseAirflowVersion(NEWEST_KNOWN_VERSION) as AirflowVersion;

export function newestKnownVersion(): AirflowVersion {
  return NEWEST_KNOWN;
}

/**
 * The schema head of a released Airflow version, or undefined when the table cannot say:
 * pre-releases carry provisional heads, versions older than the table, and versions of a minor
 * newer than the newest known one (its migrations are not in our table yet).
 */
export function headForVersion(version: AirflowVersion): string | undefined {
  if (version.pre) return undefined;
  if (compareVersions(version, newestKnownVersion()) > 0) return undefined;
  let head: string | undefined;
  for (const row of PARSED_HEADS) {
    if (compareVersions(row.version, version) <= 0) head = row.head;
    else break;
  }
  return head;
}

/** Position of a head in the (linear) migration chain, or -1 when the table does not know it. */
export function headIndex(revision: string): number {
  return PARSED_HEADS.findIndex((row) => row.head === revision);
}

/** All released heads in migration order, oldest first. */
export function revisionChain(): string[] {
  return PARSED_HEADS.map((row) => row.head);
}

/** The first release that has this head (e.g. 'fe199e1abd77' -> 3.0.3), for messages. */
export function firstVersionWithHead(revision: string): AirflowVersion | undefined {
  return PARSED_HEADS.find((row) => row.head === revision)?.version;
}
