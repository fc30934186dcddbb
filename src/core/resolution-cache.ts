// What the coordinator resolved about images whose tag names no Airflow version: a digest's version
// never changes (kept until evicted); a tag may move, so tag -> digest (or, from a probe pod that
// reports no digest, tag -> version) is kept for a TTL. Admission reads it synchronously: a hit
// answers at once, a miss is held and resolved by the coordinator. Pure: the caller gives the time.
import { parseImageReference } from './images.js';
import { parseAirflowVersion } from './versions.js';

/**
 * How a version was found: the hold's own text, an earlier resolution (cache), the image's labels in
 * its registry, or a probe pod running `airflow version`.
 */
export const RESOLUTION_METHODS = ['admission', 'cache', 'registry', 'probe-pod'] as const;
export type ResolutionMethod = (typeof RESOLUTION_METHODS)[number];

export interface Resolution {
  version: string;
  method: ResolutionMethod;
  /** The image manifest's digest, when the method tells it. */
  digest?: string;
  durationMs: number;
}

interface ReferenceEntry {
  digest?: string;
  version?: string;
  /** Infinity for a reference pinned by digest. */
  expiresAt: number;
}

export const DEFAULT_TAG_TTL_MS = 5 * 60_000;
const DEFAULT_LIMIT = 10_000;

export class ResolutionCache {
  private readonly digests = new Map<string, string>();
  private readonly references = new Map<string, ReferenceEntry>();
  private snapshotValue: { changes: number; validUntil: number; value: Readonly<Record<string, string>> } | undefined;
  private changes = 0;

  constructor(
    private readonly tagTtlMs = DEFAULT_TAG_TTL_MS,
    private readonly limit = DEFAULT_LIMIT,
  ) {
    if (!Number.isFinite(tagTtlMs) || tagTtlMs < 0) throw new RangeError(`tag TTL must be >= 0 ms, not ${tagTtlMs}`);
  }

  /** The version of an image reference as written in a pod spec, when known and fresh at `now`. */
  get(image: string, now: number): string | undefined {
    const reference = parseImageReference(image);
    if (!reference) return undefined;
    if (reference.digest !== undefined) return this.digests.get(reference.digest);
    const entry = this.references.get(image);
    if (!entry || entry.expiresAt <= now) return undefined;
    return entry.digest !== undefined ? this.digests.get(entry.digest) : entry.version;
  }

  /** Records a resolution of `image`; a version that is not an Airflow version is refused. */
  set(image: string, resolution: Pick<Resolution, 'version' | 'digest'>, now: number): void {
    const reference = parseImageReference(image);
    if (!reference) throw new RangeError(`'${image.slice(0, 80)}' is not an image reference`);
    if (!parseAirflowVersion(resolution.version))
      throw new RangeError(`'${resolution.version.slice(0, 40)}' is not an Airflow version`);
    const digest = reference.digest ?? resolution.digest;
    if (digest !== undefined) this.bounded(this.digests, digest, resolution.version);
    const entry: ReferenceEntry = { expiresAt: reference.digest !== undefined ? Infinity : now + this.tagTtlMs };
    if (digest !== undefined) entry.digest = digest;
    else entry.version = resolution.version;
    this.bounded(this.references, image, entry);
    this.changes++;
  }

  /** Every fresh resolution by image reference, for admission (the same object until one changes or expires). */
  snapshot(now: number): Readonly<Record<string, string>> {
    const last = this.snapshotValue;
    if (last && last.changes === this.changes && now < last.validUntil) return last.value;
    const value: Record<string, string> = {};
    let validUntil = Infinity;
    for (const [image, entry] of this.references) {
      if (entry.expiresAt <= now) {
        this.references.delete(image);
        continue;
      }
      const version = entry.digest !== undefined ? this.digests.get(entry.digest) : entry.version;
      if (version === undefined) continue;
      value[image] = version;
      validUntil = Math.min(validUntil, entry.expiresAt);
    }
    this.snapshotValue = { changes: this.changes, validUntil, value: Object.freeze(value) };
    return this.snapshotValue.value;
  }

  private bounded<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > this.limit) map.delete(map.keys().next().value as string);
  }
}
