// Runs the resolve step (steps/resolve.ts) for a release's workloads held for a resolution, with the
// coordinator's cluster, database and Events behind its ResolveContext.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { readResolveTarget, releasePatch, resolvedHoldPatch } from '../core/hold.js';
import { printable } from '../core/images.js';
import { isJsonObject, type WorkloadKind } from '../core/objects.js';
import { RESOLUTION_METHODS, type Resolution } from '../core/resolution-cache.js';
import type { Cluster } from '../k8s/cluster.js';
import type { GuardConfig } from '../core/config.js';
import { podTemplateOf, type ImageResolver } from './image-resolver.js';
import { projectPod } from './release-view.js';
import type { StepRecord } from './operation.js';
import type { WorkloadRecord } from './release-view.js';
import { resolve, type OpenOperationView, type ResolveContext, type ResolveOutcome } from './steps/resolve.js';

export interface ResolutionDeps {
  cluster: Cluster;
  config: GuardConfig;
  logger: Logger;
  resolver: ImageResolver;
  readRevision(namespace: string, release: string): Promise<string | null>;
  /** The heads map of the image running the release's newest version (ImageHeads.ofNewestPod). */
  readHeadsMap: ResolveContext['readHeadsMap'];
  emitEvent(
    namespace: string,
    kind: WorkloadKind,
    name: string,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void;
  /** Audit and metrics: one record per resolution. */
  onResolution?: (record: ResolutionRecord) => void;
}

export interface ResolutionRecord {
  /** The downgrade's operation when the resolution led to one, else the resolution's own id (rv-…). */
  operationId: string;
  namespace: string;
  release: string;
  workload: string;
  image: string;
  outcome: ResolveOutcome['kind'];
  reason: string;
  version?: string;
  method?: Resolution['method'];
  digest?: string;
  durationMs?: number;
}

/** What a resolution found, as the hold annotation `resolved` keeps it for the operation it opens (JSON). */
export function resolvedAnnotation(image: string, r: Resolution): string {
  return JSON.stringify({ image, ...r });
}

function describe(found: { image: string } & Resolution): string {
  return `${found.image} is Airflow ${found.version} (${found.method}${found.digest ? `, ${found.digest}` : ''}, ${found.durationMs} ms)`;
}

/** The step record an operation opened from a resolved hold starts with (`status` and the audit show it). */
export function resolvedStep(annotation: string, at: Date): StepRecord {
  let found: ({ image: string } & Resolution) | undefined;
  try {
    const parsed: unknown = JSON.parse(annotation);
    if (
      isJsonObject(parsed) &&
      typeof parsed.image === 'string' &&
      typeof parsed.version === 'string' &&
      (RESOLUTION_METHODS as readonly unknown[]).includes(parsed.method) &&
      typeof parsed.durationMs === 'number' &&
      parsed.durationMs >= 0
    )
      found = parsed as unknown as { image: string } & Resolution;
  } catch {
    // reported below
  }
  const detail = found ? describe(found) : 'resolved before admission of the downgrade (record unreadable)';
  return {
    step: 'resolve',
    outcome: 'ok',
    at: at.toISOString(),
    durationMs: found?.durationMs ?? 0,
    detail: printable(detail, 2000),
  };
}

export async function resolveHeldWorkloads(
  deps: ResolutionDeps,
  workloads: readonly WorkloadRecord[],
  open: OpenOperationView | undefined,
): Promise<void> {
  const ctx: ResolveContext = {
    async resolveImage(held) {
      const { kind, namespace, name, release } = held.workload;
      const object = await deps.cluster.find(kind, namespace, name);
      const template = object ? podTemplateOf(kind, object) : undefined;
      if (!template) throw new Error(`${kind.toLowerCase()}/${name} has no pod template`);
      const source = `${kind.toLowerCase()}/${name}`;
      return deps.resolver.resolve({ namespace, release, image: held.target.image, source, template });
    },
    readRevision: (namespace, release) => deps.readRevision(namespace, release),
    readHeadsMap: (namespace, release) => deps.readHeadsMap(namespace, release),
    async releaseHold(held) {
      const { kind, namespace, name } = held.workload;
      const object = await deps.cluster.find(kind, namespace, name);
      if (!object || readResolveTarget(object)?.image !== held.target.image) return;
      await deps.cluster.patchUnchanged(kind, object, releasePatch(object));
    },
    async holdForDowngrade(held, target, resolution) {
      const { kind, namespace, name } = held.workload;
      const object = await deps.cluster.find(kind, namespace, name);
      if (!object || readResolveTarget(object)?.image !== held.target.image) return;
      const found = resolvedAnnotation(held.target.image, resolution);
      await deps.cluster.patchUnchanged(kind, object, resolvedHoldPatch(object, target, found));
    },
    async reportResolution(held, outcome) {
      const { namespace, release, kind, name } = held.workload;
      const r = outcome.resolution;
      const record: ResolutionRecord = {
        operationId:
          outcome.kind === 'downgrade'
            ? outcome.target.operationId
            : `rv-${createHash('sha256').update(`${namespace}/${kind}/${name}/${held.target.image}`).digest('hex').slice(0, 16)}`,
        namespace,
        release,
        workload: `${kind.toLowerCase()}/${name}`,
        image: held.target.image,
        outcome: outcome.kind,
        reason: outcome.reason,
        ...(r ? { version: r.version, method: r.method, durationMs: r.durationMs } : {}),
        ...(r?.digest ? { digest: r.digest } : {}),
      };
      deps.logger.info(record, 'version resolution');
      deps.onResolution?.(record);
      const timing = r ? ` (${r.method}, ${r.durationMs} ms)` : '';
      if (outcome.kind === 'released')
        deps.emitEvent(namespace, kind, name, 'Normal', 'VersionResolved', `${outcome.reason}${timing}`);
      else if (outcome.kind === 'downgrade')
        deps.emitEvent(namespace, kind, name, 'Warning', 'VersionResolvedDowngrade', `${outcome.reason}${timing}`);
      else deps.emitEvent(namespace, kind, name, 'Warning', 'VersionUnresolved', outcome.reason);
    },
  };
  let downgrade = false;
  for (const workload of workloads) {
    if (workload.resolving === undefined) continue;
    const object = await deps.cluster.find(workload.kind, workload.namespace, workload.name);
    const target = object ? readResolveTarget(object) : undefined;
    if (!target) continue;
    downgrade = (await resolve(ctx, { workload, target }, open)).kind === 'downgrade' || downgrade;
  }
  const first = workloads[0];
  if (downgrade && first) await resolveRunningImages(deps, first.namespace, first.release);
}

/**
 * The downgrade runs in (or from the template of) a pod of the from-version: when its image names no
 * version either, the running pods' images are resolved too, so the operation can tell them apart.
 */
async function resolveRunningImages(deps: ResolutionDeps, namespace: string, release: string): Promise<void> {
  const pods = await deps.cluster.list('Pod', namespace);
  const seen = new Set<string>();
  for (const pod of pods.items) {
    const record = projectPod(pod, deps.config, deps.resolver.lookup);
    if (!record || record.release !== release || record.version !== undefined || record.role !== 'metadata-db')
      continue;
    const template = podTemplateOf('Pod', pod);
    const containers = (template?.spec as { containers?: Array<{ name?: string; image?: string }> } | undefined)
      ?.containers;
    const image = containers?.find((c) => c.name === record.container)?.image;
    if (!template || image === undefined || seen.has(image)) continue;
    seen.add(image);
    try {
      const r = await deps.resolver.resolve({ namespace, release, image, source: `pod/${record.name}`, template });
      deps.logger.info({ namespace, release, image, ...r }, 'running image resolved');
    } catch (error) {
      deps.logger.warn({ namespace, release, image, err: (error as Error).message }, 'running image not resolved');
    }
  }
}
