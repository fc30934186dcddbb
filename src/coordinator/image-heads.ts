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
import { compareVersions, parseAirflowVersion } from '../core/versions.js';
import type { ExecRunner } from '../k8s/exec.js';
import { queryPod } from './pod-query.js';
import { chooseExecPod, podPerImage, type PodRecord } from './release-view.js';

/** Bound on cached maps (one per image digest seen running a from-version past the table). */
const MAX_CACHED = 256;
/** Images of one release whose maps a resolution reads at most (a rollout runs two; more is unusual). */
const MAX_IMAGES_READ = 4;

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

    const candidates = [...pods];
    let pod = chooseExecPod(candidates, where.release, where.namespace, target.fromRevision ?? '', target.fromVersion);
    // Pods of a private tag have no version in their records until a pod event re-reads them: the
    // image whose map gives the from-version the hold's from-revision runs it (or a newer one: as good).
    if (!pod && target.fromRevision !== undefined) {
      const newest = await this.newest(candidates, where);
      if (newest && headFromMap(newest.map, from) === target.fromRevision) pod = newest.pod;
    }
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
   * For a resolution the table cannot place: the map that lists the newest version among the images
   * the release's Running and Ready pods run (the image that runs the database's schema before a
   * downgrade; their versions need not be known: a private tag's is not yet), or undefined when no
   * such pod runs. At most MAX_IMAGES_READ images are read, each once per digest.
   */
  async ofNewestPod(
    pods: Iterable<PodRecord>,
    where: { namespace: string; release: string },
  ): Promise<{ map: HeadsMap; name: string; detail: string } | undefined> {
    const best = await this.newest(pods, where);
    if (!best) return undefined;
    const name = imageHeadsSource(best.map, best.pod.imageDigest ?? `of pod ${best.pod.name}`).name;
    return { map: best.map, name, detail: `schema heads from ${name} (${best.how})` };
  }

  private async newest(
    pods: Iterable<PodRecord>,
    where: { namespace: string; release: string },
  ): Promise<{ map: HeadsMap; pod: PodRecord; how: string } | undefined> {
    let best: { map: HeadsMap; pod: PodRecord; how: string } | undefined;
    for (const pod of podPerImage(pods, where.release, where.namespace).slice(0, MAX_IMAGES_READ)) {
      const began = Date.now();
      const cachedBefore = pod.imageDigest !== undefined && this.byDigest.has(pod.imageDigest);
      const map = await this.read(pod);
      const how = cachedBefore ? 'cached' : `read in pod ${pod.name} in ${Date.now() - began} ms`;
      const newest = map.rows.at(-1)?.version;
      const bestNewest = best?.map.rows.at(-1)?.version;
      if (!best || (newest && bestNewest && compareVersions(newest, bestNewest) > 0)) best = { map, pod, how };
    }
    return best;
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
