// What a simulated Airflow image knows: its version, its schema head, the migration chain it can
// walk (its own migration scripts), its `_REVISION_HEADS_MAP`, and how its CLI resolves
// `--to-version` (reference/airflow.md: the resolver differs by the RUNNING image's version).
import { REVISION_HEADS } from '../../core/heads.js';
import { isAirflowRepository, parseImageReference, versionFromTag } from '../../core/images.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from '../../core/versions.js';

export interface AirflowImage {
  image: string;
  version: AirflowVersion;
  /** The schema head its migrations end at. */
  head: string;
  /** Revisions it has migration scripts for, oldest first, ending at `head`. */
  chain: readonly string[];
  /** `_REVISION_HEADS_MAP` as this image prints it (versions up to its own). */
  headsMap: Readonly<Record<string, string>>;
}

const HEADS = REVISION_HEADS.map(([text, head]) => ({ text, head, version: parseAirflowVersion(text) as AirflowVersion }));
/** Airflow 3 squashed everything before 2.7.0: its chain starts at 2.7.0's head. */
const AIRFLOW_3_CHAIN_START = '2.7.0';
/** Airflow 3.2+ lists key "2.6.2" with the squashed base revision (reference/airflow.md). */
const SQUASHED_BASE = { key: '2.6.2', head: '4bc4d934e2bc', since: parseAirflowVersion('3.2.0') as AirflowVersion };
/** From this version on `--to-version` takes the head of the greatest listed version <= V. */
const GREATEST_LISTED_RESOLVER_SINCE = parseAirflowVersion('3.1.0') as AirflowVersion;

/** The Airflow version a simulated image runs, or undefined for anything that is not Airflow. */
export function airflowImageVersion(image: string | undefined): AirflowVersion | undefined {
  if (!image) return undefined;
  const reference = parseImageReference(image);
  if (!reference?.tag || !isAirflowRepository(reference)) return undefined;
  const fromTag = versionFromTag(reference.tag);
  return fromTag.known ? fromTag.version : undefined;
}

/** A release candidate or post release migrates like its release: compare on X.Y.Z only. */
function releaseOf(version: AirflowVersion): AirflowVersion {
  return { major: version.major, minor: version.minor, patch: version.patch, text: `${version.major}.${version.minor}.${version.patch}` };
}

/** Knowledge of an Airflow image, or undefined (not Airflow, or older than any schema head). */
export function airflowImage(image: string | undefined): AirflowImage | undefined {
  const version = airflowImageVersion(image);
  if (!version || !image) return undefined;
  const release = releaseOf(version);
  const known = HEADS.filter((row) => compareVersions(row.version, release) <= 0);
  const own = known.at(-1);
  if (!own) return undefined;
  const firstKey = version.major >= 3 ? AIRFLOW_3_CHAIN_START : known[0]?.text;
  const fromIndex = Math.max(0, known.findIndex((row) => row.text === firstKey));
  const listed = known.slice(fromIndex);
  const headsMap: Record<string, string> = {};
  if (compareVersions(release, SQUASHED_BASE.since) >= 0) headsMap[SQUASHED_BASE.key] = SQUASHED_BASE.head;
  for (const row of listed) headsMap[row.text] = row.head;
  return { image, version, head: own.head, chain: listed.map((row) => row.head), headsMap };
}

export function knowsRevision(image: AirflowImage, revision: string): boolean {
  return image.chain.includes(revision);
}

/** -1 when the image has no migration script for the revision. */
export function chainIndex(image: AirflowImage, revision: string): number {
  return image.chain.indexOf(revision);
}

/**
 * `--to-version V` as the running image resolves it: undefined means "Downgrading to version V is
 * not supported." (Airflow 3.1+: head of the greatest listed version <= V; older: V itself or up
 * to nine patch numbers below it, within the same minor.)
 */
export function resolveToVersion(image: AirflowImage, versionText: string): string | undefined {
  return compareVersions(releaseOf(image.version), GREATEST_LISTED_RESOLVER_SINCE) >= 0
    ? resolveGreatestListed(image, versionText)
    : resolveByPatchSteps(image, versionText);
}

function resolveGreatestListed(image: AirflowImage, versionText: string): string | undefined {
  const target = parseAirflowVersion(versionText);
  if (!target || target.pre || target.post !== undefined) return undefined;
  let best: { version: AirflowVersion; head: string } | undefined;
  for (const [key, head] of Object.entries(image.headsMap)) {
    const listed = parseAirflowVersion(key) as AirflowVersion;
    if (compareVersions(listed, target) <= 0 && (!best || compareVersions(listed, best.version) > 0)) {
      best = { version: listed, head };
    }
  }
  return best?.head;
}

/** Airflow's `_get_version_revision(version, recursion_limit=10)`. */
function resolveByPatchSteps(image: AirflowImage, versionText: string): string | undefined {
  let candidate = versionText;
  for (let limit = 10; limit > 0; limit -= 1) {
    const head = image.headsMap[candidate];
    if (head !== undefined) return head;
    const parts = candidate.split('.');
    if (parts.length !== 3 || !parts.every((p) => /^-?\d+$/.test(p))) return undefined;
    const [major, minor, patch] = parts.map(Number) as [number, number, number];
    candidate = `${major}.${minor}.${patch - 1}`;
  }
  return undefined;
}

/** Python's repr of a set of revisions, as check-migrations prints it: {'a'} or set(). */
export function pythonSet(revisions: Iterable<string>): string {
  const items = [...revisions];
  return items.length === 0 ? 'set()' : `{${items.map((r) => `'${r}'`).join(', ')}}`;
}
