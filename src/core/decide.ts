// The admission decision: pure, from the request, the release state the caller supplies (caches or
// CLI flags) and the guard's configuration. Versions are compared by schema head.
import { createHash } from 'node:crypto';
import { guardedWorkloadKind, type AdmissionRequest } from './admission.js';
import { ANNOTATIONS, type GuardConfig } from './config.js';
import { downgradeArgv, formatArgv } from './downgrade-command.js';
import { firstVersionWithHead, headForVersion, headIndex, isValidRevision, newestKnownVersion, revisionChain } from './heads.js';
import { holdPatch, isHeld, pointer, readHoldRecord, readHoldTarget, returnPatch, type HoldRecord, type JsonPatchOperation } from './hold.js';
import { printable } from './images.js';
import { annotationAt, isJsonObject, isValidObjectName, valueAt, type WorkloadKind } from './objects.js';
import { componentRole, identifyRelease, workloadVersion, type ReleaseIdentity, type WorkloadVersion } from './release.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from './versions.js';

export interface ReleaseOperation {
  id: string;
  fromVersion: string;
  toVersion: string;
  phase: string;
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
  workloads?: ReleaseWorkload[];
  execPod?: { name: string; component: string };
}

export type DecisionKind =
  | 'pass-through'
  | 'trusted-user'
  | 'break-glass'
  | 'install'
  | 'no-version-change'
  | 'forward'
  | 'same-head'
  | 'downgrade'
  | 'join-operation'
  | 'cancel-hold'
  | 'conflicting-operation'
  | 'unsupported-downgrade'
  | 'unknown-version';

/** What admitting this request asks the coordinator to do; always 'none' for dry-run requests. */
export type SideEffect = 'none' | 'open-operation' | 'join-operation' | 'cancel-hold';

export interface VersionPoint {
  version?: string;
  revision?: string;
  source: 'object' | 'oldObject' | 'runningVersion' | 'dbRevision' | 'operation';
}

export interface DowngradePlan {
  /** The exact argv the coordinator execs (validated values only). */
  argv: string[];
  execPod?: { name: string; component: string };
  drain: Array<{ kind: string; name: string; component: string; replicas: number }>;
  /** The outage the plan causes: the drained workloads stop after the downgrade until the target's pods are Ready. */
  outage: { workloads: number; pods: number };
}

export interface Decision {
  kind: DecisionKind;
  allowed: boolean;
  /** One line for logs and audit. */
  reason: string;
  /** Short lines for the API server to show the client (kubectl, Helm). */
  warnings: string[];
  patch: JsonPatchOperation[];
  /** Set when denied: the status the API server returns. */
  denial?: { code: number; message: string };
  dryRun: boolean;
  sideEffect: SideEffect;
  subject: { kind: string; namespace: string; name: string; user: string; release?: string; component?: string };
  from?: VersionPoint;
  to?: VersionPoint;
  operation?: { id: string; fromVersion: string; toVersion: string; fromRevision?: string; toRevision: string; phase?: string };
  hold?: HoldRecord;
  plan?: DowngradePlan;
  breakGlass?: { reason: string };
}

const TOOL = 'airflow-downgrade-guard';
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const OPERATION_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const AIRFLOW_3 = parseAirflowVersion('3.0.0') as AirflowVersion;
const AIRFLOW_3_FLOOR = parseAirflowVersion('2.7.0') as AirflowVersion;

/** Deterministic per release and head pair, so every object of one Helm upgrade joins the same operation. */
export function operationIdFor(namespace: string, release: string, from: string, toRevision: string): string {
  const digest = createHash('sha256').update(`${namespace}/${release}/${from}/${toRevision}`).digest('hex');
  return `dg-${digest.slice(0, 16)}`;
}

export function isValidOperationId(id: unknown): id is string {
  return typeof id === 'string' && OPERATION_ID.test(id);
}

interface Context {
  request: AdmissionRequest;
  state: ReleaseState;
  config: GuardConfig;
  kind: WorkloadKind;
  identity: ReleaseIdentity;
  base: Pick<Decision, 'dryRun' | 'subject'>;
  /** 'deployment/airflow-scheduler', safe for messages. */
  ref: string;
}

export function decide(request: AdmissionRequest, state: ReleaseState, config: GuardConfig): Decision {
  const base: Pick<Decision, 'dryRun' | 'subject'> = {
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
    return passThrough(base, `${what} is not a change the guard checks`);
  }
  const identity = identifyRelease(kind, request.object, config);
  if (!identity) return passThrough(base, 'no Airflow release labels');
  base.subject.release = identity.release;
  base.subject.component = identity.component;
  const ctx: Context = { request, state, config, kind, identity, base, ref: `${kind.toLowerCase()}/${safeName(base.subject.name)}` };

  const role = componentRole(identity.component);
  if (role === 'no-metadata-db') {
    return passThrough(base, `component '${safeLabel(identity.component)}' does not use the Airflow metadata database`);
  }
  if (config.trustedUsernames.includes(request.userInfo.username)) {
    return { ...base, kind: 'trusted-user', allowed: true, reason: `change by trusted user ${printable(request.userInfo.username)}`, warnings: [], patch: [], sideEffect: 'none' };
  }
  const breakGlass = breakGlassReason(request.object);
  if (breakGlass !== undefined) return breakGlassDecision(ctx, breakGlass);

  const target = workloadVersion(kind, request.object, identity.component);
  if (!target.known) {
    if (role === 'unrecognised') {
      return passThrough(base, `component '${safeLabel(identity.component)}' is not a known Airflow component and names no Airflow version`);
    }
    if (unchangedVersionSource(ctx, target)) {
      return keepDrained(ctx, { ...base, kind: 'no-version-change', allowed: true, reason: `image unchanged (version unknown: ${target.reason})`, warnings: [], patch: [], sideEffect: 'none' });
    }
    return unknownVersion(ctx, `cannot tell the Airflow version of ${ctx.ref}: ${target.reason}`);
  }

  const to: VersionPoint = { version: target.version.text, source: 'object' };
  const toHead = headForVersion(target.version);
  if (toHead) to.revision = toHead;

  const operation = openOperation(ctx);
  if (operation) {
    const inOperation = decideWithinOperation(ctx, operation, target.version, to);
    if (inOperation) return keepDrained(ctx, inOperation);
  }

  const current = currentVersion(ctx);
  if ('unknown' in current) return unknownVersion(ctx, current.unknown, to);
  const from = current.point;
  const outcome = compareToCurrent(target.version, current);
  const versions = { from, to };
  switch (outcome.kind) {
    case 'no-version-change':
    case 'same-head':
      return keepDrained(ctx, { ...base, ...versions, kind: outcome.kind, allowed: true, reason: outcome.reason, warnings: [], patch: [], sideEffect: 'none' });
    case 'forward':
    case 'install':
      return { ...base, ...versions, kind: outcome.kind, allowed: true, reason: outcome.reason, warnings: [], patch: [], sideEffect: 'none' };
    case 'unknown':
      return unknownVersion(ctx, outcome.reason, to, from);
    case 'downgrade':
      return keepDrained(ctx, downgrade(ctx, target.version, current, to, from));
  }
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

function passThrough(base: Pick<Decision, 'dryRun' | 'subject'>, reason: string): Decision {
  return { ...base, kind: 'pass-through', allowed: true, reason, warnings: [], patch: [], sideEffect: 'none' };
}

function breakGlassReason(object: unknown): string | undefined {
  const value = annotationAt(object, ANNOTATIONS.breakGlass);
  if (value === undefined) return undefined;
  return printable(value.trim(), 200);
}

function breakGlassDecision(ctx: Context, reason: string): Decision {
  if (reason === '') {
    // An empty reason is not an audited break-glass: check the change as usual, and say why.
    const decision = decide({ ...ctx.request, object: withoutBreakGlass(ctx.request.object) }, ctx.state, ctx.config);
    return { ...decision, warnings: [`${TOOL}: ${ANNOTATIONS.breakGlass} on ${ctx.ref} has no reason and is ignored; give the reason as its value.`, ...decision.warnings] };
  }
  return {
    ...ctx.base,
    kind: 'break-glass',
    allowed: true,
    reason: `break-glass: ${reason}`,
    warnings: [`${TOOL}: break-glass on ${ctx.ref} (reason: "${reason}"): admitted untouched, no downgrade check. Remove the annotation when done.`],
    patch: [],
    sideEffect: 'none',
    breakGlass: { reason },
  };
}

function withoutBreakGlass(object: unknown): unknown {
  const copy = structuredClone(object) as { metadata: { annotations: Record<string, string> } };
  delete copy.metadata.annotations[ANNOTATIONS.breakGlass];
  return copy;
}

/** An UPDATE whose Airflow image and version annotation did not change can roll out no other version. */
function unchangedVersionSource(ctx: Context, target: Extract<WorkloadVersion, { known: false }>): boolean {
  if (ctx.request.operation !== 'UPDATE') return false;
  const old = workloadVersion(ctx.kind, ctx.request.oldObject, ctx.identity.component);
  return !old.known && old.image === target.image && old.reason === target.reason;
}

function unknownVersion(ctx: Context, why: string, to?: VersionPoint, from?: VersionPoint): Decision {
  const versions = { ...(to ? { to } : {}), ...(from ? { from } : {}) };
  const hint = `Set annotation ${ANNOTATIONS.airflowVersion} on the workload or use an image tag that names the version.`;
  if (ctx.config.strict) {
    const message = `${TOOL} (strict mode) denied ${ctx.ref}: ${why}. ${hint}`;
    return {
      ...ctx.base,
      ...versions,
      kind: 'unknown-version',
      allowed: false,
      reason: why,
      warnings: [],
      patch: [],
      sideEffect: 'none',
      denial: { code: 403, message },
    };
  }
  return {
    ...ctx.base,
    ...versions,
    kind: 'unknown-version',
    allowed: true,
    reason: why,
    warnings: [`${TOOL}: ${why}; admitted without a downgrade check.`, hint],
    patch: [],
    sideEffect: 'none',
  };
}

function currentVersion(ctx: Context): { point: VersionPoint; version?: AirflowVersion; head?: string; install?: true } | { unknown: string } {
  const { request, state } = ctx;
  let oldReason = '';
  if (request.operation === 'UPDATE') {
    const old = workloadVersion(ctx.kind, request.oldObject, ctx.identity.component);
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
  return { unknown: `the current Airflow version of release ${safeLabel(ctx.identity.release)} is unknown (${oldReason}no running version or database revision known)` };
}

function fromVersion(version: AirflowVersion, source: VersionPoint['source']): { point: VersionPoint; version: AirflowVersion; head?: string } {
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
  if (current.install) return { kind: 'install', reason: `no running version or database revision known: new install of ${target.text}` };
  const targetHead = headForVersion(target);
  const from = current.version ? current.version.text : `revision ${current.head}`;
  if (current.version && current.version.text === target.text) {
    return { kind: 'no-version-change', reason: `Airflow version stays ${target.text}` };
  }
  if (targetHead && current.head !== undefined) {
    const t = headIndex(targetHead);
    const c = headIndex(current.head);
    if (c < 0) return { kind: 'unknown', reason: `database revision ${current.head} is not in the guard's table of Airflow schema heads` };
    if (t === c) return { kind: 'same-head', reason: `${from} -> ${target.text}: same schema head ${targetHead}` };
    if (t > c) return { kind: 'forward', reason: `${from} -> ${target.text}: schema moves forward ${current.head} -> ${targetHead}` };
    return { kind: 'downgrade', reason: `${from} -> ${target.text}: schema head ${current.head} -> ${targetHead}` };
  }
  if (isNewerThanCurrent(target, current)) {
    return { kind: 'forward', reason: `${from} -> ${target.text}: newer version, schema can only move forward` };
  }
  if (!targetHead) {
    return { kind: 'unknown', reason: `no known schema head for Airflow ${target.text} (pre-release heads are provisional; releases after ${newestKnownVersion().text} are not in the table)` };
  }
  // The current version is newer than the table knows: its head is unknown but cannot be older.
  return { kind: 'downgrade', reason: `${from} -> ${target.text}: current version is newer than the guard's table, treated as a downgrade to ${targetHead}` };
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

function downgrade(ctx: Context, target: AirflowVersion, current: { version?: AirflowVersion; head?: string }, to: VersionPoint, from: VersionPoint): Decision {
  const toHead = to.revision as string;
  const versions = { from, to };
  if (isAirflow3OrLater(current) && compareVersions(target, AIRFLOW_3_FLOOR) < 0) {
    const message = `${TOOL} denied ${ctx.ref}: Airflow 3 cannot downgrade the database below 2.7.0 (its migration chain starts there); ${fromText(from)} -> ${target.text} is not possible. Downgrade to 2.7.0 or later first, or restore a database backup.`;
    return { ...ctx.base, ...versions, kind: 'unsupported-downgrade', allowed: false, reason: `downgrade ${fromText(from)} -> ${target.text} below 2.7.0 from Airflow 3`, warnings: [], patch: [], sideEffect: 'none', denial: { code: 403, message } };
  }
  const fromKey = current.head ?? from.version ?? 'unknown';
  const operationId = operationIdFor(ctx.request.namespace, ctx.identity.release, fromKey, toHead);
  const operation = {
    id: operationId,
    // From a database revision: the first release with that head names its schema.
    fromVersion: from.version ?? firstVersionWithHead(current.head as string)?.text ?? 'unknown',
    toVersion: target.text,
    ...(current.head ? { fromRevision: current.head } : {}),
    toRevision: toHead,
  };
  const { patch, record } = holdPatch(ctx.kind, ctx.request.object, { operationId, fromVersion: operation.fromVersion, toVersion: operation.toVersion, ...(current.head ? { fromRevision: current.head } : {}), toRevision: toHead }, ctx.request.operation as 'CREATE' | 'UPDATE');
  const plan = downgradePlan(ctx, toHead);
  const warnings = [
    `${TOOL}: DOWNGRADE of release ${safeLabel(ctx.identity.release)} from ${fromText(from)} to ${target.text} (schema ${current.head ?? 'unknown'} -> ${toHead}); ${ctx.ref} is held (${holdSummary(record)}), operation ${operationId}.${ctx.request.dryRun ? ' Dry run: nothing is held and no operation starts.' : ''}`,
    ...planWarnings(ctx, plan, from, target),
  ];
  if (isAirflow3OrLater(current) && compareVersions(target, AIRFLOW_3) < 0) {
    warnings.push(`Below 3.0.0 the FAB provider's tables are downgraded too: the running ${fromText(from)} image needs apache-airflow-providers-fab installed, or the downgrade fails.`);
  }
  warnings.push(`Take a database backup before the downgrade, and run "airflow dags reserialize" once ${target.text} runs.`);
  return {
    ...ctx.base,
    ...versions,
    kind: 'downgrade',
    allowed: true,
    reason: `downgrade ${fromText(from)} -> ${target.text} (schema ${current.head ?? 'unknown'} -> ${toHead}): held`,
    warnings,
    patch,
    sideEffect: ctx.request.dryRun ? 'none' : 'open-operation',
    operation,
    hold: record,
    plan,
  };
}

function holdSummary(record: HoldRecord): string {
  return record.changes.map((c) => `${c.path.slice(1).replace(/\//g, '.')}=${JSON.stringify(c.held)}`).join(', ');
}

function downgradePlan(ctx: Context, toHead: string): DowngradePlan {
  const plan: DowngradePlan = { argv: downgradeArgv(toHead), drain: [], outage: { workloads: 0, pods: 0 } };
  const pod = ctx.state.execPod;
  if (pod && isValidObjectName(pod.name) && LABEL_VALUE.test(pod.component)) plan.execPod = { name: pod.name, component: pod.component };
  for (const w of ctx.state.workloads ?? []) {
    if (!isValidObjectName(w.name) || !LABEL_VALUE.test(w.component) || !/^[A-Za-z]{1,63}$/.test(w.kind)) continue;
    if (componentRole(w.component) === 'no-metadata-db') continue;
    const replicas = Number.isSafeInteger(w.replicas) && w.replicas >= 0 ? w.replicas : 0;
    plan.drain.push({ kind: w.kind, name: w.name, component: w.component, replicas });
  }
  plan.outage = { workloads: plan.drain.length, pods: plan.drain.reduce((sum, w) => sum + w.replicas, 0) };
  return plan;
}

const MAX_WARNING = 240;

function planWarnings(ctx: Context, plan: DowngradePlan, from: VersionPoint, target: AirflowVersion): string[] {
  const where = plan.execPod
    ? `in pod ${plan.execPod.name} (${plan.execPod.component}, ${fromText(from)})`
    : `in a running ${fromText(from)} pod (api-server or webserver first, then scheduler)`;
  const lines = [`Plan: run "${formatArgv(plan.argv)}" (Airflow ${target.text}) ${where}, then check alembic_version.`];
  if (plan.drain.length > 0) {
    lines.push(...drainLines(plan.drain.map((w) => `${w.kind.toLowerCase()}/${w.name} (${w.replicas})`)));
    lines.push(`Then release the hold so ${target.text} starts on the matching schema.`);
  } else {
    lines.push(`Then drain every workload of release ${safeLabel(ctx.identity.release)} that uses the database and release the hold so ${target.text} starts on the matching schema.`);
  }
  lines.push(outageLine(plan, from, target));
  return lines;
}

/** The outage is the drain plus the start of the new pods; the downgrade itself runs while the current version serves. */
function outageLine(plan: DowngradePlan, from: VersionPoint, target: AirflowVersion): string {
  const { workloads, pods } = plan.outage;
  const stopped = workloads > 0
    ? `${workloads} workload${workloads === 1 ? '' : 's'} (${pods} pod${pods === 1 ? '' : 's'})`
    : 'every database-using pod of the release';
  return `Estimated outage: ${stopped} ${workloads > 1 ? 'stop' : 'stops'} at the drain, after the downgrade and its check, until the ${target.text} pods start and are Ready; ${fromText(from)} keeps serving while the downgrade runs.`;
}

/** Every workload the drain stops matters to the reader: spread over a few lines, then 'and N more'. */
const MAX_DRAIN_LINES = 4;

function drainLines(items: string[]): string[] {
  const lines: string[] = [];
  let rest = items;
  while (rest.length > 0) {
    const prefix = lines.length === 0 ? 'Then drain (scale to 0, suspend CronJobs):' : 'Drain (continued):';
    if (lines.length === MAX_DRAIN_LINES - 1) {
      lines.push(listLine(prefix, rest, '.'));
      break;
    }
    let taken = 1;
    while (taken < rest.length && `${prefix} ${rest.slice(0, taken + 1).join(', ')},`.length <= MAX_WARNING) taken++;
    lines.push(`${prefix} ${rest.slice(0, taken).join(', ')}${taken === rest.length ? '.' : ','}`);
    rest = rest.slice(taken);
  }
  return lines;
}

/** 'prefix a, b, c and 3 more suffix', kept under the warning length Kubernetes passes through whole. */
function listLine(prefix: string, items: string[], suffix: string): string {
  const shown: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const rest = items.length - i - 1;
    const candidate = [...shown, items[i] as string].join(', ');
    const tail = rest > 0 ? ` and ${rest} more` : '';
    if (`${prefix} ${candidate}${tail}${suffix}`.length > MAX_WARNING && shown.length > 0) {
      return `${prefix} ${shown.join(', ')} and ${items.length - shown.length} more${suffix}`;
    }
    shown.push(items[i] as string);
  }
  return `${prefix} ${shown.join(', ')}${suffix}`;
}

interface OpenOperation {
  id: string;
  fromVersion: AirflowVersion;
  toVersion: AirflowVersion;
  fromHead?: string;
  toHead: string;
  phase?: string;
  source: 'state' | 'annotations';
}

/** The release's open operation from the state, else the one the object (or its old version) is held for. */
function openOperation(ctx: Context): OpenOperation | undefined {
  const op = ctx.state.operation;
  if (op) {
    const parsed = validOperation(op.id, op.fromVersion, op.toVersion, 'state');
    if (parsed) return { ...parsed, phase: LABEL_VALUE.test(op.phase) ? op.phase : 'unknown' };
  }
  for (const object of [ctx.request.object, ctx.request.oldObject]) {
    const target = readHoldTarget(object);
    if (!target) continue;
    const parsed = validOperation(target.operationId, target.fromVersion, target.toVersion, 'annotations');
    if (parsed) return parsed;
  }
  return undefined;
}

function validOperation(id: unknown, from: unknown, to: unknown, source: OpenOperation['source']): OpenOperation | undefined {
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
function decideWithinOperation(ctx: Context, op: OpenOperation, target: AirflowVersion, to: VersionPoint): Decision | undefined {
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
  const from: VersionPoint = { version: op.fromVersion.text, source: 'operation', ...(op.fromHead ? { revision: op.fromHead } : {}) };
  const held = isHeld(ctx.request.object) || isHeld(ctx.request.oldObject);
  const goesToTarget = target.text === op.toVersion.text || targetHead === op.toHead;
  const goesBack = target.text === op.fromVersion.text || (op.fromHead !== undefined && targetHead === op.fromHead);

  if (goesToTarget) {
    const { patch, record } = holdPatch(ctx.kind, ctx.request.object, { operationId: op.id, fromVersion: op.fromVersion.text, toVersion: op.toVersion.text, ...(op.fromHead ? { fromRevision: op.fromHead } : {}), toRevision: op.toHead }, ctx.request.operation as 'CREATE' | 'UPDATE');
    return {
      ...ctx.base,
      from,
      to,
      kind: 'join-operation',
      allowed: true,
      reason: `release is under operation ${opText}: held with it`,
      warnings: [`${TOOL}: release ${safeLabel(ctx.identity.release)} is under downgrade operation ${opText}; ${ctx.ref} is held with it (${holdSummary(record)}) until the operation releases it.${ctx.request.dryRun ? ' Dry run: nothing is held.' : ''}`],
      patch,
      sideEffect: ctx.request.dryRun ? 'none' : 'join-operation',
      operation,
      hold: record,
    };
  }
  if (goesBack) {
    if (!held) return undefined;
    const record = readHoldRecord(ctx.request.object) ?? readHoldRecord(ctx.request.oldObject);
    return {
      ...ctx.base,
      from,
      to,
      kind: 'cancel-hold',
      allowed: true,
      reason: `${ctx.ref} returned to ${target.text}, the from-version of operation ${opText}: hold removed`,
      warnings: [`${TOOL}: ${ctx.ref} is back at ${target.text}, the version before operation ${opText}: its hold is removed, no downgrade for it; the guard migrates the schema forward again if the downgrade already ran.${ctx.request.dryRun ? ' Dry run: nothing changes.' : ''}`],
      patch: returnPatch(ctx.request.object, record, op.id),
      sideEffect: ctx.request.dryRun ? 'none' : 'cancel-hold',
      operation,
    };
  }
  const message = `${TOOL} denied ${ctx.ref}: release ${safeLabel(ctx.identity.release)} is under downgrade operation ${opText}; finish or cancel it (set ${op.fromVersion.text} again) before changing to ${target.text}.`;
  return {
    ...ctx.base,
    from,
    to,
    kind: 'conflicting-operation',
    allowed: false,
    reason: `release is under operation ${opText}; change to ${target.text} refused`,
    warnings: [],
    patch: [],
    sideEffect: 'none',
    operation,
    denial: { code: 409, message },
  };
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
    if (typeof parsed.replicas === 'number' && Number.isSafeInteger(parsed.replicas) && parsed.replicas >= 0) record.replicas = parsed.replicas;
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
function keepDrained(ctx: Context, decision: Decision): Decision {
  if (!decision.allowed || ctx.request.operation !== 'UPDATE') return decision;
  if (ctx.kind !== 'Deployment' && ctx.kind !== 'StatefulSet') return decision;
  const drained = readDrainedRecord(ctx.request.oldObject);
  if (!drained) return decision;
  const asked = valueAt(ctx.request.object, ['spec', 'replicas']);
  // 0 is what the drain set: the update did not ask for a count, keep the recorded one.
  const replicas = typeof asked === 'number' && Number.isSafeInteger(asked) && asked > 0 ? asked : drained.replicas;
  const record: DrainedRecord = { operation: drained.operation, ...(replicas !== undefined ? { replicas } : {}) };
  const text = JSON.stringify(record);
  if (asked === 0 && annotationAt(ctx.request.object, ANNOTATIONS.drained) === text) return decision;
  const annotationsExist = isJsonObject(valueAt(ctx.request.object, ['metadata', 'annotations'])) || decision.patch.some((op) => op.path === '/metadata/annotations');
  const patch: JsonPatchOperation[] = [
    ...decision.patch.filter((op) => op.path !== '/spec/replicas'),
    { op: 'add', path: '/spec/replicas', value: 0 },
    annotationsExist
      ? { op: 'add', path: pointer(['metadata', 'annotations', ANNOTATIONS.drained]), value: text }
      : { op: 'add', path: '/metadata/annotations', value: { [ANNOTATIONS.drained]: text } },
  ];
  const warning = `${TOOL}: ${ctx.ref} is drained by operation ${drained.operation}: kept at 0 replicas${replicas !== undefined ? `, ${replicas} restored once it runs the target version` : ''}.`;
  return { ...decision, patch, warnings: [...decision.warnings, warning], reason: `${decision.reason}; kept drained at 0 replicas` };
}
