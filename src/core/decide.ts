// The admission decision: pure, from the request, the release state the caller supplies (caches or
// CLI flags) and the guard's configuration. Versions are compared by schema head. `decide` reads as
// the table it is: the request's facts are computed once, then each row either answers or passes on.
import { createHash } from 'node:crypto';
import { guardedWorkloadKind, type AdmissionRequest } from './admission.js';
import { ANNOTATIONS, unknownVersionPolicy, type GuardConfig } from './config.js';
import {
  allowed,
  denied,
  held,
  type Decision,
  type DecisionBasis,
  type DowngradePlan,
  type VersionPoint,
} from './decision.js';
import { downgradeArgv, formatArgv, migrateArgv } from './downgrade-command.js';
import {
  firstVersionWithHead,
  headForVersion,
  headIndex,
  isValidRevision,
  newestKnownVersion,
  revisionChain,
} from './heads.js';
import {
  holdPatch,
  isHeld,
  resolveHoldPatch,
  pointer,
  readHoldRecord,
  readHoldTarget,
  returnPatch,
  type JsonPatchOperation,
} from './hold.js';
import { printable } from './images.js';
import { annotationAt, isJsonObject, isValidObjectName, valueAt, type WorkloadKind } from './objects.js';
import {
  componentRole,
  identifyRelease,
  withResolvedImage,
  workloadVersion,
  type ComponentRole,
  type ReleaseIdentity,
  type WorkloadVersion,
} from './release.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from './versions.js';
import { holdSummary, planWarnings, TOOL } from './warning-layout.js';

export type { Decision, DecisionKind, DecisionOperation, DowngradePlan, SideEffect, VersionPoint } from './decision.js';

export interface ReleaseOperation {
  id: string;
  fromVersion: string;
  toVersion: string;
  phase: string;
  /** A return after a finished downgrade: the id of that downgrade. */
  returnOf?: string;
}

export interface ReleaseWorkload {
  kind: string;
  name: string;
  component: string;
  replicas: number;
  version?: string;
}

/** What the caller knows about the release. Nothing here is trusted: every string is validated before use. */
export interface ReleaseState {
  runningVersion?: string;
  dbRevision?: string;
  operation?: ReleaseOperation;
  /**
   * The release's last operation once it ended: after `done` a change back to its from-version is a
   * return; after `aborted` a downgrade gets an id of its own (the aborted one's holds keep its id).
   */
  lastOperation?: ReleaseOperation;
  workloads?: ReleaseWorkload[];
  execPod?: { name: string; component: string };
  /**
   * Versions the coordinator resolved for images whose tag does not name one (registry labels or a
   * probe pod), by image reference as written in the pod spec: a hit answers at admission at once.
   */
  imageVersions?: Readonly<Record<string, string>>;
}

const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const OPERATION_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const AIRFLOW_3 = parseAirflowVersion('3.0.0') as AirflowVersion;
const AIRFLOW_3_FLOOR = parseAirflowVersion('2.7.0') as AirflowVersion;

/**
 * Deterministic per release and head pair, so every object of one Helm upgrade joins the same
 * operation; `after` (an aborted operation's id) makes the next downgrade's id differ from it.
 */
export function operationIdFor(
  namespace: string,
  release: string,
  from: string,
  toRevision: string,
  after?: string,
): string {
  const digest = createHash('sha256')
    .update(`${namespace}/${release}/${from}/${toRevision}${after === undefined ? '' : `/after/${after}`}`)
    .digest('hex');
  return `dg-${digest.slice(0, 16)}`;
}

export function isValidOperationId(id: unknown): id is string {
  return typeof id === 'string' && OPERATION_ID.test(id);
}

/** The facts of a request to an Airflow release's workload, computed once and passed down. */
interface RequestFacts {
  request: AdmissionRequest;
  state: ReleaseState;
  config: GuardConfig;
  basis: DecisionBasis;
  kind: WorkloadKind;
  identity: ReleaseIdentity;
  role: ComponentRole;
  /** 'deployment/airflow-scheduler', safe for messages. */
  ref: string;
  /** The release name, safe for messages. */
  release: string;
}

/** The current version as the request, the release state or the database tells it. */
type Current = { point: VersionPoint; version?: AirflowVersion; head?: string; install?: true };

export function decide(request: AdmissionRequest, state: ReleaseState, config: GuardConfig): Decision {
  const basis: DecisionBasis = {
    dryRun: request.dryRun,
    subject: {
      kind: request.kind.kind,
      namespace: request.namespace,
      name: objectName(request),
      user: request.userInfo.username,
    },
  };
  const kind = guardedWorkloadKind(request);
  if (!kind) {
    const what = `${request.operation} of ${request.kind.kind}${request.subResource ? `/${request.subResource}` : ''}`;
    return allowed(basis, 'pass-through', `${what} is not a change the guard checks`);
  }
  const identity = identifyRelease(kind, request.object, config);
  if (!identity) return allowed(basis, 'pass-through', 'no Airflow release labels');
  basis.subject.release = identity.release;
  basis.subject.component = identity.component;
  const f: RequestFacts = {
    request,
    state,
    config,
    basis,
    kind,
    identity,
    role: componentRole(identity.component),
    ref: `${kind.toLowerCase()}/${safeName(basis.subject.name)}`,
    release: safeLabel(identity.release),
  };

  if (f.role === 'no-metadata-db') {
    return allowed(
      basis,
      'pass-through',
      `component '${safeLabel(identity.component)}' does not use the Airflow metadata database`,
    );
  }
  if (config.trustedUsernames.includes(request.userInfo.username)) {
    return allowed(basis, 'trusted-user', `change by trusted user ${printable(request.userInfo.username)}`);
  }
  const breakGlass = breakGlassReason(request.object);
  if (breakGlass !== undefined) return breakGlassDecision(f, breakGlass);

  const target = resolvedVersion(workloadVersion(kind, request.object, identity.component), state);
  if (!target.known) return unknownTarget(f, target);

  const to: VersionPoint = { version: target.version.text, source: 'object' };
  const toHead = headForVersion(target.version);
  if (toHead) to.revision = toHead;

  const operation = openOperation(f);
  if (operation) {
    const inOperation = decideWithinOperation(f, operation, target.version, to);
    if (inOperation) return keepDrained(f, inOperation);
  }

  const current = currentVersion(f);
  if ('unknown' in current) return unknownVersion(f, current.unknown, to, undefined, target);
  const from = current.point;
  const outcome = compareToCurrent(target.version, current);
  switch (outcome.kind) {
    case 'no-version-change':
    case 'same-head':
      return keepDrained(f, allowed({ ...basis, from, to }, outcome.kind, outcome.reason));
    case 'forward':
      return (
        returnAfterDone(f, target.version, current, to, from) ??
        allowed({ ...basis, from, to }, outcome.kind, outcome.reason)
      );
    case 'install':
      return allowed({ ...basis, from, to }, outcome.kind, outcome.reason);
    case 'unknown':
      return unknownVersion(f, outcome.reason, to, from, target);
    case 'downgrade':
      return keepDrained(f, downgrade(f, target.version, current, to, from));
  }
}

/** The versions the coordinator resolved for images (ReleaseState.imageVersions) applied to a workload's. */
function resolvedVersion(v: WorkloadVersion, state: ReleaseState): WorkloadVersion {
  const known = state.imageVersions;
  return known === undefined
    ? v
    : withResolvedImage(v, (image) => (Object.hasOwn(known, image) ? known[image] : undefined));
}

function objectName(request: AdmissionRequest): string {
  const fromObject = valueAt(request.object, ['metadata', 'name']);
  return request.name || (typeof fromObject === 'string' ? fromObject : '');
}

function safeName(name: string): string {
  return isValidObjectName(name) ? name : printable(name, 63);
}

function safeLabel(value: string): string {
  return LABEL_VALUE.test(value) ? value : printable(value, 63);
}

function breakGlassReason(object: unknown): string | undefined {
  const value = annotationAt(object, ANNOTATIONS.breakGlass);
  if (value === undefined) return undefined;
  return printable(value.trim(), 200);
}

function breakGlassDecision(f: RequestFacts, reason: string): Decision {
  if (reason === '') {
    // An empty reason is not an audited break-glass: check the change as usual, and say why.
    const decision = decide({ ...f.request, object: withoutBreakGlass(f.request.object) }, f.state, f.config);
    return {
      ...decision,
      warnings: [
        `${TOOL}: ${ANNOTATIONS.breakGlass} on ${f.ref} has no reason and is ignored; give the reason as its value.`,
        ...decision.warnings,
      ],
    };
  }
  return allowed(f.basis, 'break-glass', `break-glass: ${reason}`, {
    warnings: [
      `${TOOL}: break-glass on ${f.ref} (reason: "${reason}"): admitted untouched, no downgrade check. Remove the annotation when done.`,
    ],
    breakGlass: { reason },
  });
}

/** The object without the break-glass annotation; only the path to it is copied (the rest may be arbitrarily deep). */
function withoutBreakGlass(object: unknown): unknown {
  const { metadata } = object as { metadata: { annotations: Record<string, string> } };
  const { [ANNOTATIONS.breakGlass]: _removed, ...annotations } = metadata.annotations;
  return { ...(object as object), metadata: { ...metadata, annotations } };
}

/** The workload names no version: not Airflow, unchanged, or unknown. */
function unknownTarget(f: RequestFacts, target: Extract<WorkloadVersion, { known: false }>): Decision {
  if (f.role === 'unrecognised') {
    return allowed(
      f.basis,
      'pass-through',
      `component '${safeLabel(f.identity.component)}' is not a known Airflow component and names no Airflow version`,
    );
  }
  if (unchangedVersionSource(f, target)) {
    return keepDrained(f, allowed(f.basis, 'no-version-change', `image unchanged (version unknown: ${target.reason})`));
  }
  return unknownVersion(
    f,
    `cannot tell the Airflow version of ${f.ref}: ${target.reason}`,
    undefined,
    undefined,
    target,
  );
}

/**
 * Policy hold: held like a downgrade, naming the image to resolve. The coordinator resolves it
 * (registry labels, else a probe pod), compares it with the database's revision, and releases the
 * hold unchanged or turns it into a downgrade's. Admission itself never waits on a registry.
 */
function holdForResolution(f: RequestFacts, basis: DecisionBasis, why: string, target: WorkloadVersion): Decision {
  const image = target.image as string;
  const current = currentVersion(f);
  const from = 'unknown' in current || current.install ? undefined : current;
  const hold = resolveHoldPatch(
    f.kind,
    f.request.object,
    {
      image,
      ...(target.known ? { toVersion: target.version.text } : {}),
      ...(from?.version ? { fromVersion: from.version.text } : {}),
      ...(from?.head ? { fromRevision: from.head } : {}),
    },
    f.request.operation as 'CREATE' | 'UPDATE',
  );
  const dry = f.request.dryRun ? ' Dry run: nothing is held and nothing is resolved.' : '';
  // The first line fits the 256 characters the API server keeps: why, and what the guard does.
  const warnings = [
    `${TOOL}: ${why}; held until its version is resolved.${dry}`,
    target.known
      ? `${f.ref} is held (${holdSummary(hold.record)}) while the schema heads are read from the database and the newer image's own heads map; released at once unless it is a downgrade.`
      : `${f.ref} is held (${holdSummary(hold.record)}) while the version of '${printable(image)}' is read from its labels in the registry, else from a probe pod running "airflow version"; released at once unless it is a downgrade.`,
    `To skip the resolution: set annotation ${ANNOTATIONS.airflowVersion} on the workload or use an image tag that names the version.`,
  ];
  return {
    ...allowed(basis, 'unknown-version', `${why}: held until the version is resolved`, {
      warnings,
      patch: hold.patch,
      sideEffect: f.request.dryRun ? 'none' : 'resolve-version',
    }),
    hold: hold.record,
  };
}

/** An UPDATE whose Airflow image and version annotation did not change can roll out no other version. */
function unchangedVersionSource(f: RequestFacts, target: Extract<WorkloadVersion, { known: false }>): boolean {
  if (f.request.operation !== 'UPDATE') return false;
  const old = resolvedVersion(workloadVersion(f.kind, f.request.oldObject, f.identity.component), f.state);
  return !old.known && old.image === target.image && old.reason === target.reason;
}

function unknownVersion(
  f: RequestFacts,
  why: string,
  to?: VersionPoint,
  from?: VersionPoint,
  target?: WorkloadVersion,
): Decision {
  const basis: DecisionBasis = { ...f.basis, ...(to ? { to } : {}), ...(from ? { from } : {}) };
  const hint = `Set annotation ${ANNOTATIONS.airflowVersion} on the workload or use an image tag that names the version.`;
  const policy = unknownVersionPolicy(f.config);
  // The coordinator finds out what is missing: the image's version, the database's revision, and
  // heads past the table (from the newer image's own map).
  if (policy === 'hold' && target?.image !== undefined) return holdForResolution(f, basis, why, target);
  if (policy === 'deny') {
    const message = `${TOOL} (strict mode) denied ${f.ref}: ${why}. ${hint}`;
    return denied(basis, 'unknown-version', why, { code: 403, message });
  }
  return allowed(basis, 'unknown-version', why, {
    warnings: [`${TOOL}: ${why}; admitted without a downgrade check.`, hint],
  });
}

function currentVersion(f: RequestFacts): Current | { unknown: string } {
  const { request, state } = f;
  let oldReason = '';
  if (request.operation === 'UPDATE') {
    const old = resolvedVersion(workloadVersion(f.kind, request.oldObject, f.identity.component), state);
    if (old.known) return fromVersion(old.version, 'oldObject');
    oldReason = `the current object: ${old.reason}; `;
  }
  const running = state.runningVersion !== undefined ? parseAirflowVersion(state.runningVersion) : undefined;
  if (running) return fromVersion(running, 'runningVersion');
  if (isValidRevision(state.dbRevision)) {
    const head = state.dbRevision;
    return { point: { revision: head, source: 'dbRevision' }, head };
  }
  if (request.operation === 'CREATE') return { point: { source: 'runningVersion' }, install: true };
  return {
    unknown: `the current Airflow version of release ${f.release} is unknown (${oldReason}no running version or database revision known)`,
  };
}

function fromVersion(version: AirflowVersion, source: VersionPoint['source']): Current {
  const head = headForVersion(version);
  const point: VersionPoint = { version: version.text, source };
  if (head) point.revision = head;
  return head ? { point, version, head } : { point, version };
}

type Outcome =
  | { kind: 'no-version-change' | 'same-head' | 'forward' | 'install' | 'downgrade'; reason: string }
  | { kind: 'unknown'; reason: string };

/** Same rule as Airflow's --to-version resolution: a downgrade iff the target's head is earlier in the chain. */
export function compareToCurrent(
  target: AirflowVersion,
  current: { version?: AirflowVersion; head?: string; install?: true },
): Outcome {
  if (current.install)
    return { kind: 'install', reason: `no running version or database revision known: new install of ${target.text}` };
  const targetHead = headForVersion(target);
  const from = current.version ? current.version.text : `revision ${current.head}`;
  if (current.version && current.version.text === target.text) {
    return { kind: 'no-version-change', reason: `Airflow version stays ${target.text}` };
  }
  if (targetHead && current.head !== undefined) {
    const t = headIndex(targetHead);
    const c = headIndex(current.head);
    if (c < 0)
      return {
        kind: 'unknown',
        reason: `database revision ${current.head} is not in the guard's table of Airflow schema heads`,
      };
    if (t === c) return { kind: 'same-head', reason: `${from} -> ${target.text}: same schema head ${targetHead}` };
    if (t > c)
      return {
        kind: 'forward',
        reason: `${from} -> ${target.text}: schema moves forward ${current.head} -> ${targetHead}`,
      };
    return { kind: 'downgrade', reason: `${from} -> ${target.text}: schema head ${current.head} -> ${targetHead}` };
  }
  if (isNewerThanCurrent(target, current)) {
    return { kind: 'forward', reason: `${from} -> ${target.text}: newer version, schema can only move forward` };
  }
  if (!targetHead) {
    return {
      kind: 'unknown',
      reason: `no known schema head for Airflow ${target.text} (pre-release heads are provisional; releases after ${newestKnownVersion().text} are not in the table)`,
    };
  }
  // The current version is newer than the table knows: its head is unknown but cannot be older.
  return {
    kind: 'downgrade',
    reason: `${from} -> ${target.text}: current version is newer than the guard's table, treated as a downgrade to ${targetHead}`,
  };
}

function isNewerThanCurrent(target: AirflowVersion, current: { version?: AirflowVersion; head?: string }): boolean {
  if (current.version) return compareVersions(target, current.version) > 0;
  if (current.head === undefined) return false;
  // Versions of a database revision lie below the first version of the next head in the chain.
  const chain = revisionChain();
  const index = chain.indexOf(current.head);
  if (index < 0) return false;
  const nextHead = chain[index + 1];
  const upper = nextHead ? firstVersionWithHead(nextHead) : undefined;
  if (upper) return compareVersions(target, upper) >= 0;
  return compareVersions(target, newestKnownVersion()) > 0;
}

function isAirflow3OrLater(current: { version?: AirflowVersion; head?: string }): boolean {
  if (current.version) return compareVersions(current.version, AIRFLOW_3) >= 0;
  const airflow3Head = headForVersion(AIRFLOW_3) as string;
  return current.head !== undefined && headIndex(current.head) >= headIndex(airflow3Head);
}

function fromText(from: VersionPoint): string {
  return from.version ?? `revision ${from.revision}`;
}

function downgrade(
  f: RequestFacts,
  target: AirflowVersion,
  current: Current,
  to: VersionPoint,
  from: VersionPoint,
): Decision {
  const toHead = to.revision as string;
  const basis: DecisionBasis = { ...f.basis, from, to };
  if (isAirflow3OrLater(current) && compareVersions(target, AIRFLOW_3_FLOOR) < 0) {
    const message = `${TOOL} denied ${f.ref}: Airflow 3 cannot downgrade the database below 2.7.0 (its migration chain starts there); ${fromText(from)} -> ${target.text} is not possible. Downgrade to 2.7.0 or later first, or restore a database backup.`;
    return denied(
      basis,
      'unsupported-downgrade',
      `downgrade ${fromText(from)} -> ${target.text} below 2.7.0 from Airflow 3`,
      { code: 403, message },
    );
  }
  const fromKey = current.head ?? from.version ?? 'unknown';
  const last = f.state.lastOperation;
  // The coordinator leaves an aborted operation's holds alone: a hold under its id would never open.
  const after = last?.phase === 'aborted' && isValidOperationId(last.id) ? last.id : undefined;
  const operationId = operationIdFor(f.request.namespace, f.identity.release, fromKey, toHead, after);
  const operation = {
    id: operationId,
    // From a database revision: the first release with that head names its schema.
    fromVersion: from.version ?? firstVersionWithHead(current.head as string)?.text ?? 'unknown',
    toVersion: target.text,
    ...(current.head ? { fromRevision: current.head } : {}),
    toRevision: toHead,
  };
  const hold = holdPatch(
    f.kind,
    f.request.object,
    {
      operationId,
      fromVersion: operation.fromVersion,
      toVersion: operation.toVersion,
      ...(current.head ? { fromRevision: current.head } : {}),
      toRevision: toHead,
    },
    f.request.operation as 'CREATE' | 'UPDATE',
  );
  const plan = downgradePlan(f, toHead);
  const warnings = [
    `${TOOL}: DOWNGRADE of release ${f.release} from ${fromText(from)} to ${target.text} (schema ${current.head ?? 'unknown'} -> ${toHead}); ${f.ref} is held (${holdSummary(hold.record)}), operation ${operationId}.${f.request.dryRun ? ' Dry run: nothing is held and no operation starts.' : ''}`,
    ...planWarnings(f.release, plan, fromText(from), target.text),
  ];
  if (isAirflow3OrLater(current) && compareVersions(target, AIRFLOW_3) < 0) {
    warnings.push(
      `Below 3.0.0 the FAB provider's tables are downgraded too: the running ${fromText(from)} image needs apache-airflow-providers-fab installed, or the downgrade fails.`,
    );
  }
  warnings.push(
    `Take a database backup before the downgrade, and run "airflow dags reserialize" once ${target.text} runs.`,
  );
  const reason = `downgrade ${fromText(from)} -> ${target.text} (schema ${current.head ?? 'unknown'} -> ${toHead}): held`;
  return held(basis, 'downgrade', reason, warnings, hold, operation, { plan });
}

function downgradePlan(f: RequestFacts, toHead: string): DowngradePlan {
  const plan: DowngradePlan = {
    order: f.config.order,
    argv: downgradeArgv(toHead),
    drain: [],
    outage: { workloads: 0, pods: 0 },
  };
  const pod = f.state.execPod;
  if (pod && isValidObjectName(pod.name) && LABEL_VALUE.test(pod.component))
    plan.execPod = { name: pod.name, component: pod.component };
  for (const w of f.state.workloads ?? []) {
    if (!isValidObjectName(w.name) || !LABEL_VALUE.test(w.component) || !/^[A-Za-z]{1,63}$/.test(w.kind)) continue;
    if (componentRole(w.component) === 'no-metadata-db') continue;
    const replicas = Number.isSafeInteger(w.replicas) && w.replicas >= 0 ? w.replicas : 0;
    plan.drain.push({ kind: w.kind, name: w.name, component: w.component, replicas });
  }
  plan.outage = { workloads: plan.drain.length, pods: plan.drain.reduce((sum, w) => sum + w.replicas, 0) };
  return plan;
}

/**
 * A forward move back to the from-version of the release's last downgrade, which ended `done` with
 * the schema still at its target: `helm rollback` runs no hooks, so no migration Job will move the
 * schema forward and the from-version's pods would wait for it forever. Held; the coordinator opens
 * a return operation and migrates forward itself. Any other forward move is left alone.
 */
function returnAfterDone(
  f: RequestFacts,
  target: AirflowVersion,
  current: Current,
  to: VersionPoint,
  from: VersionPoint,
): Decision | undefined {
  const last = f.state.lastOperation;
  if (!last || last.phase !== 'done') return undefined;
  const done = validOperation(last.id, last.fromVersion, last.toVersion, 'state');
  if (!done?.fromHead || to.revision !== done.fromHead || current.head !== done.toHead) return undefined;
  // The database says where the schema is when the caller knows it: moved on already, nothing to do.
  if (isValidRevision(f.state.dbRevision) && f.state.dbRevision !== done.toHead) return undefined;
  const operation = {
    id: done.id,
    fromVersion: done.fromVersion.text,
    toVersion: done.toVersion.text,
    fromRevision: done.fromHead,
    toRevision: done.toHead,
  };
  const hold = holdPatch(
    f.kind,
    f.request.object,
    { operationId: done.id, ...operation },
    f.request.operation as 'CREATE' | 'UPDATE',
  );
  const reason = `return to ${target.text} after downgrade ${done.id} (schema ${done.toHead} -> ${done.fromHead}): held`;
  const warnings = [
    `${TOOL}: RETURN of release ${f.release} to ${target.text} after downgrade ${done.id} finished (schema ${done.toHead} -> ${done.fromHead}); ${f.ref} is held (${holdSummary(hold.record)}) while the guard migrates the schema forward itself.${f.request.dryRun ? ' Dry run: nothing is held and no operation starts.' : ''}`,
    `A rollback runs no migration Job: the guard runs "${formatArgv(migrateArgv(done.fromHead))}" in a pod of ${target.text}, then releases the rollout.`,
  ];
  return held({ ...f.basis, from, to }, 'return', reason, warnings, hold, operation);
}

interface OpenOperation {
  id: string;
  fromVersion: AirflowVersion;
  toVersion: AirflowVersion;
  fromHead?: string;
  toHead: string;
  phase?: string;
  /** A return after a finished downgrade (its id): objects going back to the from-version join it. */
  returnOf?: string;
  source: 'state' | 'annotations';
}

/** The release's open operation from the state, else the one the object (or its old version) is held for. */
function openOperation(f: RequestFacts): OpenOperation | undefined {
  const op = f.state.operation;
  if (op) {
    const parsed = validOperation(op.id, op.fromVersion, op.toVersion, 'state');
    if (parsed)
      return {
        ...parsed,
        phase: LABEL_VALUE.test(op.phase) ? op.phase : 'unknown',
        ...(isValidOperationId(op.returnOf) ? { returnOf: op.returnOf } : {}),
      };
  }
  for (const object of [f.request.object, f.request.oldObject]) {
    const target = readHoldTarget(object);
    if (!target) continue;
    const parsed = validOperation(target.operationId, target.fromVersion, target.toVersion, 'annotations');
    if (parsed) return parsed;
  }
  return undefined;
}

function validOperation(
  id: unknown,
  from: unknown,
  to: unknown,
  source: OpenOperation['source'],
): OpenOperation | undefined {
  if (!isValidOperationId(id) || typeof from !== 'string' || typeof to !== 'string') return undefined;
  const fromVersion = parseAirflowVersion(from);
  const toVersion = parseAirflowVersion(to);
  const toHead = toVersion && headForVersion(toVersion);
  if (!fromVersion || !toVersion || !toHead) return undefined;
  const fromHead = headForVersion(fromVersion);
  return { id, fromVersion, toVersion, toHead, ...(fromHead ? { fromHead } : {}), source };
}

/**
 * While the release is under an operation: objects moving to its target are held too, a held
 * object moved back to its from-version is released (the user changed their mind), and any other
 * version is refused until the operation ends. Undefined: decide as usual.
 */
function decideWithinOperation(
  f: RequestFacts,
  op: OpenOperation,
  target: AirflowVersion,
  to: VersionPoint,
): Decision | undefined {
  const targetHead = headForVersion(target);
  const opText = `${op.id} (${op.fromVersion.text} -> ${op.toVersion.text}${op.phase ? `, phase ${op.phase}` : ''})`;
  const operation = {
    id: op.id,
    fromVersion: op.fromVersion.text,
    toVersion: op.toVersion.text,
    ...(op.fromHead ? { fromRevision: op.fromHead } : {}),
    toRevision: op.toHead,
    ...(op.phase ? { phase: op.phase } : {}),
  };
  const from: VersionPoint = {
    version: op.fromVersion.text,
    source: 'operation',
    ...(op.fromHead ? { revision: op.fromHead } : {}),
  };
  const basis: DecisionBasis = { ...f.basis, from, to };
  const isHeldNow = isHeld(f.request.object) || isHeld(f.request.oldObject);
  const goesToTarget = target.text === op.toVersion.text || targetHead === op.toHead;
  const goesBack = target.text === op.fromVersion.text || (op.fromHead !== undefined && targetHead === op.fromHead);

  // A return operation moves the schema forward to the from-version: the rest of the rollback joins
  // it, and a change to the downgrade's target meanwhile is refused like any other version.
  if (op.returnOf === undefined ? goesToTarget : goesBack) {
    const hold = holdPatch(
      f.kind,
      f.request.object,
      {
        operationId: op.id,
        fromVersion: op.fromVersion.text,
        toVersion: op.toVersion.text,
        ...(op.fromHead ? { fromRevision: op.fromHead } : {}),
        toRevision: op.toHead,
      },
      f.request.operation as 'CREATE' | 'UPDATE',
    );
    const warning = `${TOOL}: release ${f.release} is under downgrade operation ${opText}; ${f.ref} is held with it (${holdSummary(hold.record)}) until the operation releases it.${f.request.dryRun ? ' Dry run: nothing is held.' : ''}`;
    return held(
      basis,
      'join-operation',
      `release is under operation ${opText}: held with it`,
      [warning],
      hold,
      operation,
    );
  }
  if (goesBack) {
    if (!isHeldNow) return undefined;
    const record = readHoldRecord(f.request.object) ?? readHoldRecord(f.request.oldObject);
    return allowed(
      basis,
      'cancel-hold',
      `${f.ref} returned to ${target.text}, the from-version of operation ${opText}: hold removed`,
      {
        warnings: [
          `${TOOL}: ${f.ref} is back at ${target.text}, the version before operation ${opText}: its hold is removed, no downgrade for it; the guard migrates the schema forward again if the downgrade already ran.${f.request.dryRun ? ' Dry run: nothing changes.' : ''}`,
        ],
        patch: returnPatch(f.request.object, record, op.id),
        sideEffect: f.request.dryRun ? 'none' : 'cancel-hold',
        operation,
      },
    );
  }
  const message = `${TOOL} denied ${f.ref}: release ${f.release} is under downgrade operation ${opText}; finish or cancel it (set ${op.fromVersion.text} again) before changing to ${target.text}.`;
  return denied(
    basis,
    'conflicting-operation',
    `release is under operation ${opText}; change to ${target.text} refused`,
    { code: 409, message },
    { operation },
  );
}

/** What the coordinator's drain recorded on a workload (annotation `drained`): restored on release. */
export interface DrainedRecord {
  operation: string;
  /** Deployments/StatefulSets: replicas before the drain (or the latest desired count since). */
  replicas?: number;
  /** CronJobs: spec.suspend before the drain. */
  suspend?: boolean;
}

export function readDrainedRecord(object: unknown): DrainedRecord | undefined {
  const text = annotationAt(object, ANNOTATIONS.drained);
  if (!text) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isJsonObject(parsed) || !isValidOperationId(parsed.operation)) return undefined;
    const record: DrainedRecord = { operation: parsed.operation };
    if (typeof parsed.replicas === 'number' && Number.isSafeInteger(parsed.replicas) && parsed.replicas >= 0)
      record.replicas = parsed.replicas;
    if (typeof parsed.suspend === 'boolean') record.suspend = parsed.suspend;
    return record;
  } catch {
    return undefined;
  }
}

/**
 * A drained Deployment/StatefulSet stays at 0 replicas whatever an update says (Helm and Argo send
 * spec.replicas with every apply): on a paused Deployment or a partitioned StatefulSet, replicas
 * above 0 would start pods of the OLD template against the downgraded schema. The count the update
 * asks for is recorded in the drained annotation, and the coordinator restores it on release.
 */
function keepDrained(f: RequestFacts, decision: Decision): Decision {
  if (!decision.allowed || f.request.operation !== 'UPDATE') return decision;
  if (f.kind !== 'Deployment' && f.kind !== 'StatefulSet') return decision;
  const drained = readDrainedRecord(f.request.oldObject);
  if (!drained) return decision;
  const asked = valueAt(f.request.object, ['spec', 'replicas']);
  // 0 is what the drain set: the update did not ask for a count, keep the recorded one.
  const replicas = typeof asked === 'number' && Number.isSafeInteger(asked) && asked > 0 ? asked : drained.replicas;
  const record: DrainedRecord = { operation: drained.operation, ...(replicas !== undefined ? { replicas } : {}) };
  const text = JSON.stringify(record);
  if (asked === 0 && annotationAt(f.request.object, ANNOTATIONS.drained) === text) return decision;
  const annotationsExist =
    isJsonObject(valueAt(f.request.object, ['metadata', 'annotations'])) ||
    decision.patch.some((op) => op.path === '/metadata/annotations');
  const patch: JsonPatchOperation[] = [
    ...decision.patch.filter((op) => op.path !== '/spec/replicas'),
    { op: 'add', path: '/spec/replicas', value: 0 },
    annotationsExist
      ? { op: 'add', path: pointer(['metadata', 'annotations', ANNOTATIONS.drained]), value: text }
      : { op: 'add', path: '/metadata/annotations', value: { [ANNOTATIONS.drained]: text } },
  ];
  const warning = `${TOOL}: ${f.ref} is drained by operation ${drained.operation}: kept at 0 replicas${replicas !== undefined ? `, ${replicas} restored once it runs the target version` : ''}.`;
  return {
    ...decision,
    patch,
    warnings: [...decision.warnings, warning],
    reason: `${decision.reason}; kept drained at 0 replicas`,
  };
}
