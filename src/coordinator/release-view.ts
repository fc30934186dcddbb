// Slim records of the release's workloads and pods, projected from watched objects, and the pure
// questions the admission path and the coordinator ask of them.
import { ANNOTATIONS, type GuardConfig } from '../core/config.js';
import { headForVersion } from '../core/heads.js';
import { pointer, readHoldRecord, readResolveTarget, readReturnedFrom } from '../core/hold.js';
import { annotationsOf, isJsonObject, valueAt, type WorkloadKind } from '../core/objects.js';
import {
  componentRole,
  identifyRelease,
  mainContainer,
  releaseKey,
  withResolvedImage,
  workloadVersion,
  type ComponentRole,
  type ImageVersionLookup,
} from '../core/release.js';
import { compareVersions, parseAirflowVersion } from '../core/versions.js';
import { readDrainedRecord, type DrainedRecord, type ReleaseState } from '../core/decide.js';

/** Annotation the coordinator writes when it drains a workload: what to restore on release. */
export const DRAINED_ANNOTATION = ANNOTATIONS.drained;

export { readDrainedRecord, type DrainedRecord };

export interface WorkloadRecord {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  release: string;
  component: string;
  role: ComponentRole;
  version?: string;
  head?: string;
  replicas: number;
  holdOperation?: string;
  drained?: DrainedRecord;
  /** The operation this workload was changed back from (to its from-version) while held. */
  returnedFrom?: string;
  /** Held for a resolution (unknown version at admission): the image whose version the coordinator resolves. */
  resolving?: string;
  /** Deployment paused / StatefulSet partition / Job or CronJob suspended (by anyone). */
  resourceVersion: string;
}

export interface PodRecord {
  namespace: string;
  name: string;
  release: string;
  component: string;
  role: ComponentRole;
  version?: string;
  head?: string;
  phase: string;
  ready: boolean;
  terminating: boolean;
  container?: string;
  /** The main container's image digest (`sha256:…`) once it runs: what image heads maps are cached by. */
  imageDigest?: string;
  /** A runner pod the coordinator started for this release. */
  runnerFor?: string;
}

export const RUNNER_LABEL = 'airflow-downgrade-guard/runner-for';

/**
 * A spec field as it would be without the guard's hold: what a drain records and a release restores
 * (a held CronJob is suspended and a held new StatefulSet at 0 replicas only because of the hold).
 */
export function unheldValue(object: unknown, segments: readonly ['spec', 'replicas' | 'suspend']): unknown {
  const path = pointer(segments);
  const change = readHoldRecord(object)?.changes.find((c) => c.path === path);
  if (change) return change.existed ? change.previous : undefined;
  return valueAt(object, segments);
}

function versionFields(
  kind: WorkloadKind,
  object: unknown,
  component: string,
  lookup: ImageVersionLookup | undefined,
): { version?: string; head?: string } {
  const v = withResolvedImage(workloadVersion(kind, object, component), lookup);
  if (!v.known) return {};
  const head = headForVersion(v.version);
  return { version: v.version.text, ...(head ? { head } : {}) };
}

/** `lookup`: versions resolved from images (the coordinator's resolution cache) for tags that name none. */
export function projectWorkload(
  kind: WorkloadKind,
  object: unknown,
  config: GuardConfig,
  lookup?: ImageVersionLookup,
): WorkloadRecord | undefined {
  if (!isJsonObject(object)) return undefined;
  const identity = identifyRelease(kind, object, config);
  if (!identity) return undefined;
  const name = valueAt(object, ['metadata', 'name']);
  const namespace = valueAt(object, ['metadata', 'namespace']);
  if (typeof name !== 'string' || typeof namespace !== 'string') return undefined;
  const replicasValue = valueAt(object, ['spec', 'replicas']);
  const annotations = annotationsOf(object);
  const record: WorkloadRecord = {
    kind,
    namespace,
    name,
    release: identity.release,
    component: identity.component,
    role: componentRole(identity.component),
    replicas:
      kind === 'Deployment' || kind === 'StatefulSet' ? (typeof replicasValue === 'number' ? replicasValue : 1) : 0,
    resourceVersion: String(valueAt(object, ['metadata', 'resourceVersion']) ?? ''),
    ...versionFields(kind, object, identity.component, lookup),
  };
  // Held as soon as the hold record and its operation are there (even when other annotations are
  // missing): a held workload never counts as running its spec's version.
  const holdOperation = annotations[ANNOTATIONS.operation];
  if (holdOperation && readHoldRecord(object)) record.holdOperation = holdOperation;
  const returnedFrom = readReturnedFrom(object);
  if (returnedFrom) record.returnedFrom = returnedFrom;
  const drained = readDrainedRecord(object);
  if (drained) record.drained = drained;
  const resolving = readResolveTarget(object)?.image;
  if (resolving !== undefined) record.resolving = resolving;
  return record;
}

export function projectPod(object: unknown, config: GuardConfig, lookup?: ImageVersionLookup): PodRecord | undefined {
  if (!isJsonObject(object)) return undefined;
  const name = valueAt(object, ['metadata', 'name']);
  const namespace = valueAt(object, ['metadata', 'namespace']);
  if (typeof name !== 'string' || typeof namespace !== 'string') return undefined;
  const labels = valueAt(object, ['metadata', 'labels']);
  const runnerFor =
    isJsonObject(labels) && typeof labels[RUNNER_LABEL] === 'string' ? (labels[RUNNER_LABEL] as string) : undefined;
  // A pod is read like a workload whose pod template is the pod itself.
  const asWorkload = { metadata: object.metadata, spec: { template: object } };
  const identity = identifyRelease('Deployment', asWorkload, config);
  if (!identity && !runnerFor) return undefined;
  const component = identity?.component ?? 'runner';
  const container = mainContainer('Deployment', asWorkload, component);
  const conditions = valueAt(object, ['status', 'conditions']);
  const ready =
    Array.isArray(conditions) && conditions.some((c) => isJsonObject(c) && c.type === 'Ready' && c.status === 'True');
  return {
    namespace,
    name,
    release: identity?.release ?? (runnerFor as string),
    component,
    role: identity ? componentRole(component) : 'metadata-db',
    phase: String(valueAt(object, ['status', 'phase']) ?? 'Pending'),
    ready,
    terminating: valueAt(object, ['metadata', 'deletionTimestamp']) !== undefined,
    ...(container ? { container: container.name } : {}),
    ...digestOf(object, container?.name),
    ...(runnerFor ? { runnerFor } : {}),
    ...versionFields('Deployment', asWorkload, component, lookup),
  };
}

const DIGEST = /@(sha256:[0-9a-f]{64})$/;

/** The digest the kubelet reports for a container (`status.containerStatuses[].imageID`). */
function digestOf(pod: unknown, container: string | undefined): { imageDigest?: string } {
  const statuses = valueAt(pod, ['status', 'containerStatuses']);
  if (!container || !Array.isArray(statuses)) return {};
  const status = statuses.find((s) => isJsonObject(s) && s.name === container);
  const id = isJsonObject(status) ? status.imageID : undefined;
  const m = typeof id === 'string' ? DIGEST.exec(id) : null;
  return m ? { imageDigest: m[1] as string } : {};
}

/** Preference for the pod the downgrade runs in (DESIGN: api-server / webserver first, then scheduler). */
const EXEC_PREFERENCE = ['api-server', 'webserver', 'web', 'scheduler'];

function execRank(component: string): number {
  const i = EXEC_PREFERENCE.indexOf(component);
  return i === -1 ? EXEC_PREFERENCE.length : i;
}

/** On `head`, or (a version past the built-in table has no head in the records) on `version`. */
export function isOnVersion(rec: { head?: string; version?: string }, head: string, version?: string): boolean {
  return rec.head === head || (rec.head === undefined && version !== undefined && rec.version === version);
}

/** A Running and Ready pod of the release that runs Airflow against its metadata DB (or a runner pod). */
function isExecCandidate(p: PodRecord, release: string, namespace: string): boolean {
  return (
    p.namespace === namespace &&
    p.release === release &&
    p.phase === 'Running' &&
    p.ready &&
    !p.terminating &&
    p.container !== undefined &&
    (p.role === 'metadata-db' || p.runnerFor === release)
  );
}

function byExecPreference(a: PodRecord, b: PodRecord): number {
  return execRank(a.component) - execRank(b.component) || a.name.localeCompare(b.name);
}

/**
 * A Running and Ready pod of the release on the given (newer) head, best component first. A version
 * past the built-in table has no head in the records: `version` then picks its pods.
 */
export function chooseExecPod(
  pods: Iterable<PodRecord>,
  release: string,
  namespace: string,
  head: string,
  version?: string,
): PodRecord | undefined {
  const candidates = [...pods].filter((p) => isExecCandidate(p, release, namespace) && isOnVersion(p, head, version));
  candidates.sort(byExecPreference);
  return candidates[0];
}

/**
 * One Running and Ready pod per image the release runs (by digest; a pod without one counts as its
 * own image), best component first: whose heads map lists the most is read from them (image-heads.ts).
 */
export function podPerImage(pods: Iterable<PodRecord>, release: string, namespace: string): PodRecord[] {
  const candidates = [...pods].filter((p) => isExecCandidate(p, release, namespace)).sort(byExecPreference);
  const seen = new Set<string>();
  return candidates.filter((p) => {
    const key = p.imageDigest ?? `pod:${p.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Pods that must be gone before the held spec rolls out: every pod of the release that runs Airflow
 * against the metadata DB and is not on the target head (pods of unknown version count: safe side).
 */
export function podsBlockingRelease(
  pods: Iterable<PodRecord>,
  release: string,
  namespace: string,
  targetHead: string,
): PodRecord[] {
  return [...pods].filter(
    (p) =>
      p.namespace === namespace &&
      p.release === release &&
      (p.role === 'metadata-db' || p.runnerFor === release) &&
      p.head !== targetHead &&
      p.phase !== 'Succeeded' &&
      p.phase !== 'Failed',
  );
}

export function releaseKeyOf(record: { namespace: string; release: string }): string {
  return releaseKey(record.namespace, record.release);
}

/** The newer of two Airflow versions; text that does not parse never wins. */
function newer(best: string | undefined, text: string): string | undefined {
  const v = parseAirflowVersion(text);
  if (!v) return best;
  const b = best === undefined ? undefined : parseAirflowVersion(best);
  return !b || compareVersions(v, b) > 0 ? text : best;
}

/**
 * What the admission path knows about a release, from the caches only. Called on every Airflow
 * admission request: give it the release's own records (the caches' release index) and it is
 * O(release); other releases' records are skipped but cost a scan.
 */
export function releaseStateFrom(
  namespace: string,
  release: string,
  workloads: Iterable<WorkloadRecord>,
  pods: Iterable<PodRecord>,
  operation: ReleaseState['operation'] | undefined,
  dbRevision: string | undefined,
): ReleaseState {
  const mine: NonNullable<ReleaseState['workloads']> = [];
  const state: ReleaseState = { workloads: mine };
  let declared: string | undefined;
  let declaredScaledUp: string | undefined;
  for (const w of workloads) {
    if (w.namespace !== namespace || w.release !== release) continue;
    if (w.role !== 'metadata-db' || (w.kind !== 'Deployment' && w.kind !== 'StatefulSet')) continue;
    mine.push({
      kind: w.kind,
      name: w.name,
      component: w.component,
      replicas: w.drained?.replicas ?? w.replicas,
      ...(w.version ? { version: w.version } : {}),
    });
    if (!w.version || w.holdOperation) continue;
    declared = newer(declared, w.version);
    if (w.replicas > 0) declaredScaledUp = newer(declaredScaledUp, w.version);
  }
  const releasePods: PodRecord[] = [];
  let running: string | undefined;
  for (const p of pods) {
    if (p.namespace !== namespace || p.release !== release) continue;
    releasePods.push(p);
    if (p.role === 'metadata-db' && p.phase === 'Running' && !p.terminating && p.version)
      running = newer(running, p.version);
  }
  // Scaled to 0 (maintenance, or drained), a workload still says which version the schema was
  // migrated for: without it a Job-first downgrade of an idle release would pass as a new install.
  const runningVersion = running ?? declaredScaledUp ?? declared;
  if (runningVersion) state.runningVersion = runningVersion;
  if (dbRevision) state.dbRevision = dbRevision;
  if (operation) state.operation = operation;
  const head = runningVersion ? headForVersion(parseAirflowVersion(runningVersion)!) : undefined;
  const exec = head ? chooseExecPod(releasePods, release, namespace, head) : undefined;
  if (exec) state.execPod = { name: exec.name, component: exec.component };
  return state;
}

/** What ReleaseStateCache reads of a watch cache indexed by releaseKey (WatchCache with groupBy). */
export interface ReleaseRecords<T> {
  group(key: string): Iterable<T>;
  groupRevision(key: string): number;
}

export interface ReleaseRecordSources {
  workloads: Iterable<ReleaseRecords<WorkloadRecord>>;
  pods: ReleaseRecords<PodRecord> | undefined;
}

/** Bound on remembered releases: lookups of releases that come and go cannot grow it forever. */
const MAX_REMEMBERED_RELEASES = 10_000;

/**
 * releaseStateFrom over the caches' release index, remembered per release until one of the
 * release's own records changes: the admission path asks for the same release on every request of
 * a rollout, and the answer only changes with a watch event of that release.
 */
export class ReleaseStateCache {
  private readonly remembered = new Map<string, { revisions: number[]; state: ReleaseState }>();

  constructor(private readonly sources: () => ReleaseRecordSources) {}

  get(
    namespace: string,
    release: string,
    operation: ReleaseState['operation'] | undefined,
    dbRevision: string | undefined,
  ): ReleaseState {
    const key = releaseKey(namespace, release);
    const { workloads, pods } = this.sources();
    const caches = [...workloads];
    const revisions = caches.map((c) => c.groupRevision(key));
    revisions.push(pods?.groupRevision(key) ?? 0);
    let entry = this.remembered.get(key);
    if (!entry || !sameRevisions(entry.revisions, revisions)) {
      const records = caches.flatMap((c) => [...c.group(key)]);
      entry = {
        revisions,
        state: releaseStateFrom(namespace, release, records, pods?.group(key) ?? [], undefined, undefined),
      };
      this.remember(key, entry);
    }
    // A copy per request: the operation and DB revision come from elsewhere and change on their own.
    const state: ReleaseState = { ...entry.state };
    if (dbRevision) state.dbRevision = dbRevision;
    if (operation) state.operation = operation;
    return state;
  }

  private remember(key: string, entry: { revisions: number[]; state: ReleaseState }): void {
    // A release without any record (a name nobody deployed) is not worth remembering.
    if (entry.revisions.every((r) => r === 0)) {
      this.remembered.delete(key);
      return;
    }
    if (this.remembered.size >= MAX_REMEMBERED_RELEASES) this.remembered.clear();
    this.remembered.set(key, entry);
  }
}

function sameRevisions(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
