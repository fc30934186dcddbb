// What a simulated Airflow image knows: its version, its schema head, the migration chain it can
// walk (its own migration scripts, revision by revision), its `_REVISION_HEADS_MAP`, and how its
// CLI resolves `--to-version` (reference/airflow.md: the resolver differs by the RUNNING image's
// version). Chain and heads come from ./migrations.ts, never from the guard's table.
import { isAirflowRepository, parseImageReference, versionFromTag } from '../../../src/core/images.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from '../../../src/core/versions.js';
import { MIGRATIONS, RELEASE_HEADS, releaseHeads, type Migration, type ReleaseHead } from './migrations.js';

export interface AirflowImage {
  image: string;
  version: AirflowVersion;
  /** The schema head its migrations end at. */
  head: string;
  /** Revisions it has migration scripts for, oldest first, ending at `head`. */
  chain: readonly string[];
  /** The release that introduced each revision of `chain`, for its log lines. */
  releaseOfRevision: ReadonlyMap<string, string>;
  /** `_REVISION_HEADS_MAP` as this image prints it (versions up to its own). */
  headsMap: Readonly<Record<string, string>>;
}

/** Airflow 3 squashed everything before 2.7.0: its chain starts with 2.7.0's migrations. */
const AIRFLOW_3_CHAIN_START = parseAirflowVersion('2.7.0') as AirflowVersion;
/** Airflow 3.2+ lists key "2.6.2" with the squashed base revision (reference/airflow.md). */
const SQUASHED_BASE = { key: '2.6.2', head: '4bc4d934e2bc', since: parseAirflowVersion('3.2.0') as AirflowVersion };
/** From this version on `--to-version` takes the head of the greatest listed version <= V. */
const GREATEST_LISTED_RESOLVER_SINCE = parseAirflowVersion('3.1.0') as AirflowVersion;

const VERSION_LABEL = 'org.apache.airflow.version';

/**
 * What images declare, as a registry would serve their config: labels per image reference. The
 * simulated containers read their Airflow version from `org.apache.airflow.version` as real ones
 * do; an image not in the catalog falls back to its tag (the upstream tag forms).
 */
export class ImageCatalog {
  private readonly labels = new Map<string, Readonly<Record<string, string>>>();
  private readonly ownMigrations = new Map<string, Readonly<Record<string, readonly string[]>>>();

  /**
   * `migrations`: revisions past the known chain (./airflow-migrations.json) the image
   * has scripts for, so its chain and `_REVISION_HEADS_MAP` go past it: a list is added by the
   * image's own release; a map release -> revisions also lists releases between the chain and it
   * (an image two releases past the chain knows the migrations of the one in between).
   */
  declare(
    image: string,
    labels: Readonly<Record<string, string>>,
    migrations: readonly string[] | Readonly<Record<string, readonly string[]>> = [],
  ): void {
    this.labels.set(image, { ...labels });
    const byRelease = Array.isArray(migrations)
      ? { [labels[VERSION_LABEL] ?? '']: migrations as readonly string[] }
      : (migrations as Readonly<Record<string, readonly string[]>>);
    if (Object.values(byRelease).some((revisions) => revisions.length > 0)) this.ownMigrations.set(image, byRelease);
    else this.ownMigrations.delete(image);
  }

  labelsOf(image: string): Readonly<Record<string, string>> | undefined {
    return this.labels.get(image);
  }

  /** Release -> revisions the image declares past the known chain (empty when none). */
  migrationsOf(image: string): Readonly<Record<string, readonly string[]>> {
    return this.ownMigrations.get(image) ?? {};
  }
}

/** The catalog the runtime uses unless given its own (in memory, empty: tags decide). */
export const DEFAULT_IMAGE_CATALOG = new ImageCatalog();

/** The Airflow version a simulated image runs, or undefined for anything that is not Airflow. */
export function airflowImageVersion(
  image: string | undefined,
  catalog: ImageCatalog = DEFAULT_IMAGE_CATALOG,
): AirflowVersion | undefined {
  if (!image) return undefined;
  const declared = catalog.labelsOf(image)?.[VERSION_LABEL];
  if (declared !== undefined) return parseAirflowVersion(declared.trim());
  const reference = parseImageReference(image);
  if (!reference?.tag || !isAirflowRepository(reference)) return undefined;
  const fromTag = versionFromTag(reference.tag);
  return fromTag.known ? fromTag.version : undefined;
}

/** A release candidate or post release migrates like its release: compare on X.Y.Z only. */
function releaseOf(version: AirflowVersion): AirflowVersion {
  return {
    major: version.major,
    minor: version.minor,
    patch: version.patch,
    text: `${version.major}.${version.minor}.${version.patch}`,
  };
}

/** Knowledge of an Airflow image, or undefined (not Airflow, or older than any schema head). */
export function airflowImage(
  image: string | undefined,
  catalog: ImageCatalog = DEFAULT_IMAGE_CATALOG,
): AirflowImage | undefined {
  const version = airflowImageVersion(image, catalog);
  if (!version || !image) return undefined;
  const release = releaseOf(version);
  const { migrations, releaseHeads: heads } = chainOf(image, release, catalog);
  const own = heads.filter((row) => compareVersions(row.release, release) <= 0).at(-1);
  if (!own) return undefined;
  const first = version.major >= 3 ? AIRFLOW_3_CHAIN_START : undefined;
  const scripts = migrations.filter(
    (m) => compareVersions(m.release, release) <= 0 && (!first || compareVersions(m.release, first) >= 0),
  );
  const headsMap: Record<string, string> = {};
  if (compareVersions(release, SQUASHED_BASE.since) >= 0) headsMap[SQUASHED_BASE.key] = SQUASHED_BASE.head;
  for (const row of heads) {
    if (compareVersions(row.release, release) > 0) break;
    if (!first || compareVersions(row.release, first) >= 0) headsMap[row.release.text] = row.head;
  }
  return {
    image,
    version,
    head: own.head,
    chain: scripts.map((m) => m.revision),
    releaseOfRevision: new Map(scripts.map((m) => [m.revision, m.release.text])),
    headsMap,
  };
}

/** The known chain, plus the migrations an image newer than it declares, release by release. */
function chainOf(
  image: string,
  release: AirflowVersion,
  catalog: ImageCatalog,
): { migrations: readonly Migration[]; releaseHeads: readonly ReleaseHead[] } {
  const declared = Object.entries(catalog.migrationsOf(image));
  if (declared.length === 0) return { migrations: MIGRATIONS, releaseHeads: RELEASE_HEADS };
  const last = MIGRATIONS.at(-1) as Migration;
  const releases = declared
    .map(([text, revisions]) => {
      const parsed = parseAirflowVersion(text);
      if (!parsed) throw new Error(`image ${image} declares migrations of ${JSON.stringify(text)}, not a version`);
      return { release: releaseOf(parsed), revisions };
    })
    .sort((a, b) => compareVersions(a.release, b.release));
  const added: Migration[] = [];
  for (const { release: r, revisions } of releases) {
    if (compareVersions(r, last.release) <= 0)
      throw new Error(`image ${image} declares migrations but ${r.text} is not newer than ${last.release.text}`);
    if (compareVersions(r, release) > 0)
      throw new Error(`image ${image} declares migrations of ${r.text}, newer than its own ${release.text}`);
    for (const revision of revisions)
      added.push({ revision, downRevision: added.at(-1)?.revision ?? last.revision, release: r });
  }
  const migrations = [...MIGRATIONS, ...added];
  return { migrations, releaseHeads: releaseHeads(migrations) };
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
