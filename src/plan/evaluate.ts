// `plan`: rendered manifests through the same decide() the webhook runs. Each workload becomes
// the AdmissionRequest the API server would send for it (UPDATE with the stored object as
// oldObject when it exists, else CREATE; always dryRun), and the decisions are grouped per release.
import { randomUUID } from 'node:crypto';
import type { GuardConfig } from '../core/config.js';
import type { Decision, DecisionKind, DowngradePlan, ReleaseState, VersionPoint } from '../core/decide.js';
import type { HoldRecord } from '../core/hold.js';
import { isJsonObject, isValidObjectName, type JsonObject, type WorkloadKind } from '../core/objects.js';
import { identifyRelease, type ReleaseIdentity } from '../core/release.js';
import { reviewAdmission } from '../core/review.js';
import { ManifestError, objectRef, workloadKindOf, type ManifestObject } from './manifests.js';

/** Where the current objects and the release state come from: the live cluster or stated flags. */
export interface PlanSource {
  /** One line for the report, e.g. `cluster "prod" (context prod-admin)`. */
  readonly description: string;
  /** The object as the cluster stores it now; undefined when it does not exist. */
  current(kind: WorkloadKind, namespace: string, name: string): Promise<JsonObject | undefined>;
  /** What the release runs now (the manifests' own workloads are given for a source that knows none). */
  releaseState(namespace: string, release: string, manifestWorkloads: ReleaseState['workloads']): Promise<ReleaseState>;
}

export interface PlanOptions {
  config: GuardConfig;
  /** Namespace of objects that name none (`helm template` without --namespace). */
  namespace: string;
  /** Who the API server would say sent the requests. */
  user: string;
}

/** 'undetermined': an Airflow version (target or current) cannot be told, so neither answer is safe. */
export type ReleaseOutcome = 'downgrade' | 'denied' | 'undetermined' | 'no-downgrade';

export interface ObjectResult {
  document: number;
  kind: WorkloadKind;
  name: string;
  operation: 'CREATE' | 'UPDATE';
  decision: DecisionKind;
  allowed: boolean;
  reason: string;
  from?: VersionPoint;
  to?: VersionPoint;
  /** What the hold would change, e.g. `spec.paused=true`. */
  hold?: string;
  denial?: string;
  /** What kubectl/Helm would print for this object. */
  warnings: string[];
}

export interface ReleasePlan {
  namespace: string;
  release: string;
  outcome: ReleaseOutcome;
  from?: VersionPoint;
  to?: VersionPoint;
  operationId?: string;
  /** The downgrade plan of the first object that opens the operation. */
  plan?: DowngradePlan;
  /** Objects the admission would hold, with what it changes. */
  held: string[];
  /**
   * What kubectl/Helm would print: the plan once (as for the first held object; the others
   * differ only in their own name and hold) and the warnings of objects that are not held.
   */
  warnings: string[];
  objects: ObjectResult[];
}

export interface PlanReport {
  source: string;
  documents: number;
  releases: ReleasePlan[];
  /** Objects the guard does not check: other kinds, workloads of no Airflow release. */
  skipped: Array<{ document: number; object: string; reason: string }>;
}

// A change the guard would deny fails the apply, so it is an error for the pipeline (1), reported as
// 'denied' in the plan. Over several releases (and objects) the most severe outcome wins: 1 > 4 > 3 > 0.
export const PLAN_EXIT = { noDowngrade: 0, error: 1, usage: 2, downgrade: 3, undetermined: 4, denied: 1 } as const;

/** Outcomes from the most severe down. */
const SEVERITY: readonly ReleaseOutcome[] = ['denied', 'undetermined', 'downgrade', 'no-downgrade'];

const EXIT_OF: Record<ReleaseOutcome, number> = {
  denied: PLAN_EXIT.denied,
  undetermined: PLAN_EXIT.undetermined,
  downgrade: PLAN_EXIT.downgrade,
  'no-downgrade': PLAN_EXIT.noDowngrade,
};

function moreSevere(a: ReleaseOutcome, b: ReleaseOutcome): ReleaseOutcome {
  return SEVERITY.indexOf(a) <= SEVERITY.indexOf(b) ? a : b;
}

export function planExitCode(report: PlanReport): number {
  return EXIT_OF[report.releases.reduce<ReleaseOutcome>((worst, r) => moreSevere(worst, r.outcome), 'no-downgrade')];
}

interface Workload {
  document: number;
  kind: WorkloadKind;
  namespace: string;
  name: string;
  object: JsonObject;
}

const RESOURCE: Record<WorkloadKind, { group: string; resource: string }> = {
  Deployment: { group: 'apps', resource: 'deployments' },
  StatefulSet: { group: 'apps', resource: 'statefulsets' },
  Job: { group: 'batch', resource: 'jobs' },
  CronJob: { group: 'batch', resource: 'cronjobs' },
};

function workloadsOf(manifests: ManifestObject[], options: PlanOptions, skipped: PlanReport['skipped']): Workload[] {
  const workloads: Workload[] = [];
  for (const { document, object } of manifests) {
    const kind = workloadKindOf(object);
    if (!kind) {
      skipped.push({
        document,
        object: objectRef(object),
        reason: `${String(object.apiVersion)} ${String(object.kind)} is not a workload the guard checks`,
      });
      continue;
    }
    const metadata = isJsonObject(object.metadata) ? object.metadata : {};
    const name = metadata.name;
    if (!isValidObjectName(name)) {
      throw new ManifestError(
        `document ${document}: ${kind} has ${name === undefined ? 'no metadata.name' : `an invalid metadata.name ${JSON.stringify(String(name).slice(0, 80))}`}`,
      );
    }
    const namespace =
      typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : options.namespace;
    workloads.push({ document, kind, namespace, name, object: { ...object, metadata: { ...metadata, namespace } } });
  }
  return workloads;
}

/**
 * The object the API server would admit: the manifest, keeping what an apply or Helm's
 * three-way merge keeps of the stored object (its identity and annotations others set,
 * such as a hold the guard put there).
 */
function admittedObject(manifest: JsonObject, current: JsonObject | undefined): JsonObject {
  if (!current || !isJsonObject(current.metadata)) return manifest;
  const stored = current.metadata;
  const metadata = isJsonObject(manifest.metadata) ? manifest.metadata : {};
  const annotations = {
    ...(isJsonObject(stored.annotations) ? stored.annotations : {}),
    ...(isJsonObject(metadata.annotations) ? metadata.annotations : {}),
  };
  const identity = Object.fromEntries(
    ['uid', 'resourceVersion', 'generation', 'creationTimestamp']
      .filter((k) => stored[k] !== undefined)
      .map((k) => [k, stored[k]]),
  );
  return {
    ...manifest,
    metadata: { ...metadata, ...identity, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
  };
}

function admissionReview(w: Workload, current: JsonObject | undefined, user: string): JsonObject {
  const { group, resource } = RESOURCE[w.kind];
  const gvk = { group, version: 'v1', kind: w.kind };
  const gvr = { group, version: 'v1', resource };
  const operation = current ? 'UPDATE' : 'CREATE';
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: gvk,
      resource: gvr,
      requestKind: gvk,
      requestResource: gvr,
      name: w.name,
      namespace: w.namespace,
      operation,
      userInfo: { username: user, groups: ['system:authenticated'] },
      object: admittedObject(w.object, current),
      oldObject: current ?? null,
      dryRun: true,
      options: {
        apiVersion: 'meta.k8s.io/v1',
        kind: current ? 'UpdateOptions' : 'CreateOptions',
        dryRun: ['All'],
        fieldManager: 'airflow-downgrade-guard-plan',
      },
    },
  };
}

function holdText(ref: string, hold: HoldRecord): string {
  return `${ref} (${hold.changes.map((c) => `${c.path.slice(1).replace(/\//g, '.')}=${JSON.stringify(c.held)}`).join(', ')})`;
}

function objectResult(w: Workload, operation: 'CREATE' | 'UPDATE', d: Decision): ObjectResult {
  return {
    document: w.document,
    kind: w.kind,
    name: w.name,
    operation,
    decision: d.kind,
    allowed: d.allowed,
    reason: d.reason,
    ...(d.from ? { from: d.from } : {}),
    ...(d.to ? { to: d.to } : {}),
    ...(d.hold ? { hold: holdText(`${w.kind.toLowerCase()}/${w.name}`, d.hold) } : {}),
    ...(d.denial ? { denial: d.denial.message } : {}),
    warnings: d.warnings,
  };
}

function addDecision(plan: ReleasePlan, result: ObjectResult, d: Decision): void {
  plan.objects.push(result);
  const coordinated = d.kind === 'downgrade' || d.kind === 'join-operation';
  const firstHeld =
    coordinated &&
    !plan.objects.slice(0, -1).some((o) => o.decision === 'downgrade' || o.decision === 'join-operation');
  if (!coordinated || firstHeld) for (const w of d.warnings) if (!plan.warnings.includes(w)) plan.warnings.push(w);
  const outcome: ReleaseOutcome = !d.allowed
    ? 'denied'
    : d.kind === 'unknown-version'
      ? 'undetermined'
      : coordinated
        ? 'downgrade'
        : 'no-downgrade';
  plan.outcome = moreSevere(plan.outcome, outcome);
  if (result.hold) plan.held.push(result.hold);
  if (coordinated && !plan.operationId && d.operation) {
    plan.operationId = d.operation.id;
    if (d.from) plan.from = d.from;
    if (d.to) plan.to = d.to;
  }
  if (d.plan && !plan.plan) plan.plan = d.plan;
  if (!plan.from && d.from) plan.from = d.from;
  if (!plan.to && d.to) plan.to = d.to;
}

/** Deployments and StatefulSets of one release in the manifests: what the drain would stop when the cluster is not asked. */
function manifestWorkloads(
  workloads: Workload[],
  identities: Map<Workload, ReleaseIdentity | undefined>,
  namespace: string,
  release: string,
): NonNullable<ReleaseState['workloads']> {
  const out: NonNullable<ReleaseState['workloads']> = [];
  for (const w of workloads) {
    const identity = identities.get(w);
    if (!identity || w.namespace !== namespace || identity.release !== release) continue;
    if (w.kind !== 'Deployment' && w.kind !== 'StatefulSet') continue;
    const replicas =
      isJsonObject(w.object.spec) && typeof w.object.spec.replicas === 'number' ? w.object.spec.replicas : 1;
    out.push({ kind: w.kind, name: w.name, component: identity.component, replicas });
  }
  return out;
}

export async function evaluateManifests(
  manifests: ManifestObject[],
  source: PlanSource,
  options: PlanOptions,
): Promise<PlanReport> {
  const skipped: PlanReport['skipped'] = [];
  const workloads = workloadsOf(manifests, options, skipped);
  const identities = new Map(workloads.map((w) => [w, identifyRelease(w.kind, w.object, options.config)] as const));
  const currents = new Map<Workload, JsonObject | undefined>();
  const states = new Map<string, ReleaseState>();
  for (const w of workloads) {
    currents.set(w, await source.current(w.kind, w.namespace, w.name));
    const identity = identities.get(w);
    const key = identity && `${w.namespace}/${identity.release}`;
    if (identity && key && !states.has(key)) {
      states.set(
        key,
        await source.releaseState(
          w.namespace,
          identity.release,
          manifestWorkloads(workloads, identities, w.namespace, identity.release),
        ),
      );
    }
  }

  const releases = new Map<string, ReleasePlan>();
  for (const w of workloads) {
    const current = currents.get(w);
    const { decision } = reviewAdmission(
      admissionReview(w, current, options.user),
      (namespace, release) => states.get(`${namespace}/${release}`) ?? {},
      options.config,
    );
    const release = decision.subject.release;
    if (release === undefined) {
      skipped.push({ document: w.document, object: `${w.kind} ${w.name}`, reason: decision.reason });
      continue;
    }
    const key = `${w.namespace}/${release}`;
    let plan = releases.get(key);
    if (!plan) {
      plan = { namespace: w.namespace, release, outcome: 'no-downgrade', held: [], warnings: [], objects: [] };
      releases.set(key, plan);
    }
    addDecision(plan, objectResult(w, current ? 'UPDATE' : 'CREATE', decision), decision);
  }
  return {
    source: source.description,
    documents: new Set(manifests.map((m) => m.document)).size,
    releases: [...releases.values()],
    skipped,
  };
}
