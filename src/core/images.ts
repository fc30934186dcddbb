// Container image references and the Airflow version their tag names. Only tag forms Airflow and
// Bitnami publish are read; anything else (moving tags, bare digests, pgbouncer images) is
// "unknown" with a reason, never a guess.
import { boundedMemo, deepFreeze, MEMO_LIMIT } from './memo.js';
import { parseAirflowVersion, type AirflowVersion } from './versions.js';

export interface ImageReference {
  /** e.g. 'registry.local:5000', 'docker.io'; undefined when the reference names none. */
  registry?: string;
  /** Path below the registry, e.g. 'apache/airflow'. */
  repository: string;
  tag?: string;
  /** e.g. 'sha256:0123…'. */
  digest?: string;
}

export type ImageVersion =
  | { known: true; version: AirflowVersion; image: ImageReference }
  | { known: false; reason: string; image?: ImageReference };

const MAX_REFERENCE_LENGTH = 512;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

// A request names the same images several times (object and oldObject, the release lookup, the
// main-container search); the results are frozen and shared.
const parsedReferences = boundedMemo<ImageReference | undefined>(MEMO_LIMIT);
const imageVersions = boundedMemo<ImageVersion>(MEMO_LIMIT);

/** Splits 'registry:5000/path/name:tag@sha256:…' into its parts; undefined when it is not a reference. */
export function parseImageReference(text: string): ImageReference | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_REFERENCE_LENGTH) return undefined;
  return parsedReferences.get(text, splitReference);
}

function splitReference(text: string): ImageReference | undefined {
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) return undefined;
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  const first = parts[0] ?? '';
  // Docker's rule: the first component is a registry when it has a '.' or ':' or is 'localhost'.
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
    if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(registry)) return undefined;
  }
  if (parts.length === 0 || !parts.every((p) => PATH_COMPONENT.test(p))) return undefined;
  const reference: ImageReference = { repository: parts.join('/') };
  if (registry !== undefined) reference.registry = registry;
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  return deepFreeze(reference);
}

const VERSION_TEXT = String.raw`(\d{1,3}\.\d{1,3}\.\d{1,3}(?:(?:a|b|rc)\d{1,3})?(?:\.post\d{1,3})?)`;
/** apache/airflow: 3.0.2, 3.0.2-python3.12, slim-3.0.2, slim-3.0.2-python3.11, 3.1.0rc1. */
const APACHE_TAG = new RegExp(`^(?:slim-)?${VERSION_TEXT}(?:-python\\d\\.\\d{1,2})?$`);
/** bitnami/airflow: 2.10.5, 2.10.5-debian-12-r3. */
const BITNAMI_TAG = new RegExp(`^${VERSION_TEXT}-debian-\\d{1,3}-r\\d{1,4}$`);
const MOVING_TAG = /^(?:slim-)?latest(?:-python\d\.\d{1,2})?$/;
const PGBOUNCER_TAG = /^airflow-pgbouncer(?:-exporter)?-/;

export type TagVersion = { known: true; version: AirflowVersion } | { known: false; reason: string };

/** The Airflow version an image tag names. */
export function versionFromTag(tag: string): TagVersion {
  if (PGBOUNCER_TAG.test(tag)) {
    return { known: false, reason: `tag '${tag}' is a pgbouncer image, not Airflow` };
  }
  if (MOVING_TAG.test(tag)) {
    return { known: false, reason: `tag '${tag}' is a moving tag and names no Airflow version` };
  }
  const match = APACHE_TAG.exec(tag) ?? BITNAMI_TAG.exec(tag);
  const version = match?.[1] !== undefined ? parseAirflowVersion(match[1]) : undefined;
  if (!version) return { known: false, reason: `tag '${tag}' does not name an Airflow version` };
  return { known: true, version };
}

/** The Airflow version of an image reference, or why it cannot be read from it. Frozen and shared per text. */
export function versionFromImage(text: string): ImageVersion {
  // Longer texts are not references; not kept, so a huge bogus image cannot fill the memo.
  if (typeof text === 'string' && text.length > 0 && text.length <= MAX_REFERENCE_LENGTH)
    return imageVersions.get(text, readImageVersion);
  return readImageVersion(text);
}

function readImageVersion(text: string): ImageVersion {
  const image = parseImageReference(text);
  if (!image) return deepFreeze({ known: false, reason: `'${printable(text)}' is not a valid image reference` });
  if (image.tag === undefined) {
    const why = image.digest !== undefined ? 'is pinned by digest only' : 'has no tag (means latest)';
    return deepFreeze({ known: false, reason: `image '${text}' ${why} and names no Airflow version`, image });
  }
  const fromTag = versionFromTag(image.tag);
  if (!fromTag.known) return deepFreeze({ known: false, reason: `image '${text}': ${fromTag.reason}`, image });
  return deepFreeze({ known: true, version: fromTag.version, image });
}

/** Whether the repository looks like an Airflow image (apache/airflow, bitnami/airflow, corp/airflow-custom). */
export function isAirflowRepository(image: ImageReference): boolean {
  const name = image.repository.split('/').pop() ?? '';
  return name.includes('airflow');
}

/** Image text safe to put in a message: bounded length, printable ASCII only. */
export function printable(text: unknown, max = 120): string {
  const s = typeof text === 'string' ? text : String(text);
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** Labels that carry the Airflow version: official images (inherited by every image built FROM them), then Bitnami's. */
export const VERSION_LABELS = ['org.apache.airflow.version', 'org.opencontainers.image.version'] as const;

/** Upstream repositories whose tags are the Airflow version (reference/airflow.md). */
const UPSTREAM_REPOSITORIES = new Set(['apache/airflow', 'bitnami/airflow']);

/** apache/airflow or bitnami/airflow on Docker Hub: their tags name the version. */
export function isUpstreamRepository(image: ImageReference): boolean {
  return (
    (image.registry === undefined || image.registry === 'docker.io') && UPSTREAM_REPOSITORIES.has(image.repository)
  );
}

/**
 * The version an image's labels declare, for images whose tag does not decide: the upstream
 * repositories' tags win; for any other repository the labels win over version-like text in the tag.
 */
export function versionFromLabels(image: ImageReference, labels: Readonly<Record<string, string>>): TagVersion {
  if (isUpstreamRepository(image) && image.tag !== undefined) {
    const fromTag = versionFromTag(image.tag);
    if (fromTag.known) return fromTag;
  }
  for (const label of VERSION_LABELS) {
    const text = labels[label];
    // Bitnami's may carry a suffix (2.10.5-debian-12-r3): the release is its leading X.Y.Z.
    const version =
      text === undefined
        ? undefined
        : (parseAirflowVersion(text.trim()) ?? parseAirflowVersion(/^\d+\.\d+\.\d+/.exec(text.trim())?.[0] ?? ''));
    if (version) return { known: true, version };
  }
  return { known: false, reason: `image labels ${VERSION_LABELS.join(', ')} name no Airflow version` };
}
