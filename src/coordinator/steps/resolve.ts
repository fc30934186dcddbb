// Step 0, resolve: a workload the webhook held because its target version could not be told at
// admission (policy hold). The version is resolved (registry labels, else a probe pod), compared with
// the schema the database is really at, and the hold is then given back unchanged (no downgrade) or
// turned into a downgrade's hold, which opens or joins the operation like any other. The held object
// is the whole state: a replica that crashes halfway resolves again (a cache hit, the second time).
import { compareToCurrent, operationIdFor } from '../../core/decide.js';
import { firstVersionWithHead, headForVersion, headIndex } from '../../core/heads.js';
import type { HoldTarget, ResolveTarget } from '../../core/hold.js';
import { compareWithMap, type HeadsMap } from '../../core/image-heads.js';
import type { Resolution } from '../../core/resolution-cache.js';
import { parseAirflowVersion, type AirflowVersion } from '../../core/versions.js';
import type { WorkloadRecord } from '../release-view.js';

/** A workload held for a resolution, with what its hold names. */
export interface HeldForResolution {
  workload: WorkloadRecord;
  target: ResolveTarget;
}

/** The release's open operation, when there is one: a resolved change to its target joins it. */
export interface OpenOperationView {
  id: string;
  fromVersion: string;
  toVersion: string;
  fromRevision: string;
  toRevision: string;
}

export interface ResolveContext {
  /** The image's version: the resolution cache, its labels in the registry, else a probe pod; throws when none tells. */
  resolveImage(held: HeldForResolution): Promise<Resolution>;
  /** alembic_version of the release's metadata database (null: no table yet); throws when unreadable. */
  readRevision(namespace: string, release: string): Promise<string | null>;
  /** Gives the hold back: the object as it was admitted, nothing else changed. */
  releaseHold(held: HeldForResolution): Promise<void>;
  /** Turns the hold into a downgrade's (operation annotations, what was resolved), the held fields unchanged. */
  holdForDowngrade(held: HeldForResolution, target: HoldTarget, resolution: Resolution): Promise<void>;
  /**
   * The heads map of the image running the release's newest version (image-heads.ts), for versions
   * past the built-in table; undefined when no pod of it runs. Throws when it cannot be read.
   */
  readHeadsMap(namespace: string, release: string): Promise<{ map: HeadsMap; name: string } | undefined>;
  /** Warnings, Events, audit and `status` hear what was resolved, how and how long it took. */
  reportResolution(held: HeldForResolution, outcome: ResolveOutcome): Promise<void>;
}

export type ResolveOutcome =
  | { kind: 'released'; resolution: Resolution; reason: string }
  | { kind: 'downgrade'; resolution: Resolution; reason: string; target: HoldTarget }
  | { kind: 'kept'; resolution?: Resolution; reason: string };

export async function resolve(
  ctx: ResolveContext,
  held: HeldForResolution,
  open: OpenOperationView | undefined,
): Promise<ResolveOutcome> {
  const outcome = await decideResolution(ctx, held, open);
  if (outcome.kind === 'released') await ctx.releaseHold(held);
  if (outcome.kind === 'downgrade') await ctx.holdForDowngrade(held, outcome.target, outcome.resolution);
  await ctx.reportResolution(held, outcome);
  return outcome;
}

async function decideResolution(
  ctx: ResolveContext,
  held: HeldForResolution,
  open: OpenOperationView | undefined,
): Promise<ResolveOutcome> {
  const { namespace, release } = held.workload;
  let resolution: Resolution;
  if (held.target.toVersion !== undefined) {
    resolution = { version: held.target.toVersion, method: 'admission', durationMs: 0 };
  } else {
    try {
      resolution = await ctx.resolveImage(held);
    } catch (error) {
      return {
        kind: 'kept',
        reason: `the version of ${held.target.image} is not resolved: ${(error as Error).message}`,
      };
    }
  }
  const version = parseAirflowVersion(resolution.version);
  if (!version) return { kind: 'kept', resolution, reason: `'${resolution.version}' is not an Airflow version` };
  const toHead = headForVersion(version);
  if (open) return joinOpen(open, resolution, version, toHead);

  // The database says where the schema is, whatever admission believed the current version was.
  const revision = await ctx.readRevision(namespace, release);
  const fromHint = held.target.fromVersion !== undefined ? parseAirflowVersion(held.target.fromVersion) : undefined;
  const current: { version?: AirflowVersion; head?: string; install?: true } =
    revision === null
      ? { install: true }
      : { head: revision, ...(fromHint && headForVersion(fromHint) === revision ? { version: fromHint } : {}) };
  const compared = compareToCurrent(version, current);
  const what = `${held.target.image} is Airflow ${version.text} (${resolution.method})`;
  switch (compared.kind) {
    case 'no-version-change':
    case 'same-head':
    case 'forward':
    case 'install':
      return { kind: 'released', resolution, reason: `${what}: ${compared.reason}; no downgrade, released` };
    case 'unknown':
      return placedByImage(
        ctx,
        held,
        resolution,
        version,
        revision as string,
        fromHint,
        `${what}, but ${compared.reason}`,
      );
    case 'downgrade': {
      const fromRevision = revision as string;
      const fromVersion = current.version?.text ?? firstVersionWithHead(fromRevision)?.text;
      if (!toHead || headIndex(fromRevision) < 0 || !fromVersion)
        return placedByImage(
          ctx,
          held,
          resolution,
          version,
          fromRevision,
          fromHint,
          `${what}: ${compared.reason}, but its schema head is not known`,
        );
      return heldAsDowngrade(
        held,
        resolution,
        { fromVersion, fromRevision, toVersion: version.text, toRevision: toHead },
        `${what}: ${compared.reason}`,
      );
    }
  }
}

function heldAsDowngrade(
  held: HeldForResolution,
  resolution: Resolution,
  heads: Omit<HoldTarget, 'operationId'>,
  reason: string,
): ResolveOutcome {
  const { namespace, release } = held.workload;
  const target: HoldTarget = {
    operationId: operationIdFor(namespace, release, heads.fromRevision as string, heads.toRevision),
    ...heads,
  };
  return { kind: 'downgrade', resolution, target, reason: `${reason}; held as a downgrade` };
}

/**
 * A version the built-in table cannot place (past it, or a database revision it does not list):
 * the heads map of the image running the newest version places both, the image's word winning.
 */
async function placedByImage(
  ctx: ResolveContext,
  held: HeldForResolution,
  resolution: Resolution,
  version: AirflowVersion,
  revision: string,
  fromHint: AirflowVersion | undefined,
  unplaced: string,
): Promise<ResolveOutcome> {
  const { namespace, release } = held.workload;
  let read: { map: HeadsMap; name: string } | undefined;
  try {
    read = await ctx.readHeadsMap(namespace, release);
  } catch (error) {
    return {
      kind: 'kept',
      resolution,
      reason: `${unplaced}; the newer image's heads map is unreadable: ${(error as Error).message}`,
    };
  }
  if (!read)
    return { kind: 'kept', resolution, reason: `${unplaced}; no Running and Ready pod to read a heads map from` };
  const compared = compareWithMap(read.map, read.name, version, revision, fromHint);
  const what = `${held.target.image} is Airflow ${version.text} (${resolution.method})`;
  switch (compared.kind) {
    case 'forward':
    case 'same-head':
      return { kind: 'released', resolution, reason: `${what}: ${compared.reason}; no downgrade, released` };
    case 'unknown':
      return { kind: 'kept', resolution, reason: `${unplaced}, and ${compared.reason}` };
    case 'downgrade':
      return heldAsDowngrade(
        held,
        resolution,
        {
          fromVersion: compared.fromVersion,
          fromRevision: revision,
          toVersion: version.text,
          toRevision: compared.toHead,
        },
        `${what}: ${compared.reason}`,
      );
  }
}

function joinOpen(
  open: OpenOperationView,
  resolution: Resolution,
  version: AirflowVersion,
  toHead: string | undefined,
): ResolveOutcome {
  const what = `Airflow ${version.text} (${resolution.method})`;
  if (version.text === open.toVersion || toHead === open.toRevision) {
    const target: HoldTarget = {
      operationId: open.id,
      fromVersion: open.fromVersion,
      toVersion: open.toVersion,
      fromRevision: open.fromRevision,
      toRevision: open.toRevision,
    };
    return { kind: 'downgrade', resolution, target, reason: `${what}: held with operation ${open.id}` };
  }
  return {
    kind: 'kept',
    resolution,
    reason: `${what}: the release is under operation ${open.id} (${open.fromVersion} -> ${open.toVersion}); held until it ends`,
  };
}
