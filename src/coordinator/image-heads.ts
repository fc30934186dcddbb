// The schema heads an operation is opened with. The built-in table is the fast path; a from-version
// past the table (or a hold without a from-revision) is resolved from the newer running image's own
// `_REVISION_HEADS_MAP`, read once per image digest. Where the image and the table disagree, the
// image wins (it is what will run the downgrade) and the disagreement is logged.
import type { Logger } from 'pino';
import { headForVersion } from '../core/heads.js';
import {
  BUILT_IN_HEADS,
  disagreements,
  headFromMap,
  HEADS_MAP_ARGV,
  imageHeadsSource,
  parseHeadsMap,
  type HeadsMap,
  type HeadsSource,
} from '../core/image-heads.js';
import type { HoldTarget } from '../core/hold.js';
import { parseAirflowVersion } from '../core/versions.js';
import type { ExecRunner } from '../k8s/exec.js';
import { queryPod } from './pod-query.js';
import { chooseExecPod, newestVersionPod, type PodRecord } from './release-view.js';

/** Bound on cached maps (one per image digest seen running a from-version past the table). */
const MAX_CACHED = 256;

export type OperationHeads =
  | { heads: HeadsSource; fromRevision: string; toRevision: string; detail?: string }
  | { wait: string }
  | { problem: string };

export class ImageHeads {
  private readonly byDigest = new Map<string, HeadsMap>();

  constructor(
    private readonly exec: ExecRunner,
    private readonly logger: Logger,
  ) {}

  /** How many image maps are cached (for tests and status). */
  get cached(): number {
    return this.byDigest.size;
  }

  /**
   * The heads to open an operation with: the table's when it knows the from-version and the hold
   * names a from-revision, else the map of a Running and Ready pod of the from-version.
   */
  async forOpening(
    target: Pick<HoldTarget, 'fromVersion' | 'toVersion' | 'fromRevision' | 'toRevision'>,
    pods: Iterable<PodRecord>,
    where: { namespace: string; release: string },
  ): Promise<OperationHeads> {
    const from = parseAirflowVersion(target.fromVersion);
    const to = parseAirflowVersion(target.toVersion);
    if (!from || !to) return { problem: `versions ${target.fromVersion} -> ${target.toVersion} do not parse` };
    if (target.fromRevision !== undefined && headForVersion(from) !== undefined)
      return { heads: BUILT_IN_HEADS, fromRevision: target.fromRevision, toRevision: target.toRevision };

    const pod = chooseExecPod(pods, where.release, where.namespace, target.fromRevision ?? '', target.fromVersion);
    if (!pod)
      return {
        wait: `${target.fromVersion} is past the guard's table of schema heads: waiting for a Running and Ready pod of ${target.fromVersion} to read its heads map from`,
      };
    const image = pod.imageDigest ?? `of pod ${pod.name}`;
    const began = Date.now();
    const cachedBefore = pod.imageDigest !== undefined && this.byDigest.has(pod.imageDigest);
    const map = await this.read(pod);
    const how = cachedBefore ? 'cached' : `read in pod ${pod.name} in ${Date.now() - began} ms`;
    const heads = imageHeadsSource(map, image);
    const fromRevision = headFromMap(map, from);
    const toRevision = headFromMap(map, to);
    if (!fromRevision || !toRevision)
      return { problem: `${heads.name} lists no head for ${!fromRevision ? target.fromVersion : target.toVersion}` };
    const changed: string[] = [];
    if (target.fromRevision !== undefined && target.fromRevision !== fromRevision)
      changed.push(`from-revision ${target.fromRevision} -> ${fromRevision}`);
    if (target.toRevision !== toRevision) changed.push(`to-revision ${target.toRevision} -> ${toRevision}`);
    if (changed.length > 0)
      this.logger.warn(
        { namespace: where.namespace, release: where.release, image, changed },
        'the newer image disagrees with the hold annotations; the image wins',
      );
    return {
      heads,
      fromRevision,
      toRevision,
      detail: `schema heads from ${heads.name} (${how})${changed.length > 0 ? `; image wins: ${changed.join(', ')}` : ''}`,
    };
  }

  /**
   * For a resolution the table cannot place: the map of a Running and Ready pod of the release's
   * newest version (the image that runs the database's schema before a downgrade), or undefined
   * when no such pod runs.
   */
  async ofNewestPod(
    pods: Iterable<PodRecord>,
    where: { namespace: string; release: string },
  ): Promise<{ map: HeadsMap; name: string; detail: string } | undefined> {
    const pod = newestVersionPod(pods, where.release, where.namespace);
    if (!pod) return undefined;
    const began = Date.now();
    const cachedBefore = pod.imageDigest !== undefined && this.byDigest.has(pod.imageDigest);
    const map = await this.read(pod);
    const name = imageHeadsSource(map, pod.imageDigest ?? `of pod ${pod.name}`).name;
    const how = cachedBefore ? 'cached' : `read in pod ${pod.name} in ${Date.now() - began} ms`;
    return { map, name, detail: `schema heads from ${name} (${how})` };
  }

  /** The pod's image map, from the cache when its digest was read before. */
  private async read(pod: PodRecord): Promise<HeadsMap> {
    const cached = pod.imageDigest ? this.byDigest.get(pod.imageDigest) : undefined;
    if (cached) return cached;
    const map = parseHeadsMap(await queryPod(this.exec, pod, HEADS_MAP_ARGV));
    const differ = disagreements(map);
    if (differ.length > 0)
      this.logger.warn(
        { image: pod.imageDigest ?? pod.name, disagreements: differ },
        "the image's schema heads map disagrees with the built-in table; the image wins for its operations",
      );
    if (pod.imageDigest) {
      if (this.byDigest.size >= MAX_CACHED) this.byDigest.clear();
      this.byDigest.set(pod.imageDigest, map);
    }
    return map;
  }
}
