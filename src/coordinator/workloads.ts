// The coordinator's one way to a release's workloads in the cluster: each is read fresh and
// projected, changed only by a patch that tests the resourceVersion it was read at (so a decision
// made on what was read never lands on something else), and every Event about a workload or an
// operation is written here.
import type { Logger } from 'pino';
import type { GuardConfig } from '../core/config.js';
import { clearReturnedPatch, holdOperationPatch, pointer, releasePatch, setOps } from '../core/hold.js';
import { valueAt, type JsonObject, type WorkloadKind } from '../core/objects.js';
import { apiVersionOf, isConflict, type Cluster, type JsonPatchOp } from '../k8s/cluster.js';
import type { EventQueue } from './event-queue.js';
import { belongsTo, leftBehind, returnedFrom } from './membership.js';
import type { ImageVersionLookup } from '../core/release.js';
import type { OperationState } from './operation.js';
import {
  isOnVersion,
  DRAINED_ANNOTATION,
  projectWorkload,
  readDrainedRecord,
  unheldValue,
  type WorkloadRecord,
} from './release-view.js';

export type EventType = 'Normal' | 'Warning';

export interface WorkloadGatewayDeps {
  /** Versions of images whose tag names none, as resolved so far (release-view.ts projections). */
  versionLookup?: ImageVersionLookup;
  cluster: Cluster;
  config: GuardConfig;
  events: EventQueue;
  /** This replica's name, written into Events. */
  identity: string;
  logger: Logger;
  /** The release's workloads as the watch caches last saw them. */
  releaseWorkloads(namespace: string, release: string): WorkloadRecord[];
}

type WorkloadRef = Pick<WorkloadRecord, 'kind' | 'namespace' | 'name'>;

export class WorkloadGateway {
  constructor(private readonly deps: WorkloadGatewayDeps) {}

  /** The workload as the API has it now and its projection (undefined: not the release's); undefined when gone. */
  async read(w: WorkloadRef): Promise<{ obj: JsonObject; rec: WorkloadRecord | undefined } | undefined> {
    const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
    return obj ? { obj, rec: projectWorkload(w.kind, obj, this.deps.config, this.deps.versionLookup) } : undefined;
  }

  /** A hold written under the id the webhook derived moves to the operation's id (false: nothing to move). */
  async joinHold(op: OperationState, w: WorkloadRecord): Promise<boolean> {
    const read = await this.read(w);
    return read !== undefined && (await this.patch(w, read.obj, holdOperationPatch(read.obj, op.id)));
  }

  /** At 0 replicas, the replicas to restore recorded (kept when this operation recorded them already). */
  async scaleToZero(op: OperationState, w: WorkloadRecord): Promise<void> {
    const obj = (await this.read(w))?.obj;
    if (!obj) return;
    const replicas = valueAt(obj, ['spec', 'replicas']);
    const unheld = unheldValue(obj, ['spec', 'replicas']);
    const current = typeof unheld === 'number' ? unheld : 1;
    const earlier = readDrainedRecord(obj);
    // Drained by this operation already (the cache had not shown it yet): nothing to write.
    if (earlier?.operation === op.id && replicas === 0) return;
    const record = earlier?.operation === op.id ? earlier : { operation: op.id, replicas: current };
    const ops: JsonPatchOp[] = [
      ...setOps(obj, ['metadata', 'annotations', DRAINED_ANNOTATION], JSON.stringify(record)),
      { op: replicas === undefined ? 'add' : 'replace', path: '/spec/replicas', value: 0 },
    ];
    await this.patch(w, obj, ops);
    this.deps.logger.info(
      { operationId: op.id, workload: `${w.kind.toLowerCase()}/${w.name}`, replicas: current },
      'drained to 0 replicas',
    );
    this.eventOn(
      op,
      w,
      'Normal',
      'Draining',
      op.returnOf
        ? `Scaled to 0 (was ${record.replicas}) so no ${op.toVersion} pod runs against the ${op.fromVersion} schema; restored once it is there`
        : `Scaled to 0 (was ${record.replicas}) so no ${op.fromVersion} pod runs against the ${op.toVersion} schema; restored on release`,
    );
  }

  async suspendCronJob(op: OperationState, w: WorkloadRecord): Promise<void> {
    const obj = (await this.read(w))?.obj;
    if (!obj) return;
    // Suspended by this operation already (the cache had not shown it yet): its record holds the
    // value to restore; recording again would record our own suspend and keep the CronJob suspended.
    if (readDrainedRecord(obj)?.operation === op.id) return;
    const suspend = unheldValue(obj, ['spec', 'suspend']) === true;
    const ops: JsonPatchOp[] = [
      ...setOps(obj, ['metadata', 'annotations', DRAINED_ANNOTATION], JSON.stringify({ operation: op.id, suspend })),
      { op: 'add', path: '/spec/suspend', value: true },
    ];
    await this.patch(w, obj, ops);
    this.eventOn(
      op,
      w,
      'Normal',
      'Suspended',
      `Suspended during the downgrade to ${op.toVersion}; restored on release`,
    );
  }

  /**
   * Restores one workload whose spec is on `head` (the target on release, the from-version on a
   * return): its hold undone, its drained replicas or suspend given back, its returned marker
   * removed. False when it must keep waiting.
   */
  async restore(op: OperationState, w: WorkloadRecord, head: string): Promise<boolean> {
    const read = await this.read(w);
    if (!read) return true;
    const { obj, rec: current } = read;
    // A version past the built-in table has no head in the records: its version tells (isOnVersion).
    const onHead =
      current !== undefined && isOnVersion(current, head, head === op.toRevision ? op.toVersion : op.fromVersion);
    const drained = readDrainedRecord(obj);
    const held = current !== undefined && belongsTo(op, current);
    if (!onHead && !(held && !drained)) return false;
    const ops: JsonPatchOp[] = [];
    if (held) ops.push(...releasePatch(obj));
    if (drained?.operation === op.id) {
      ops.push({ op: 'remove', path: pointer(['metadata', 'annotations', DRAINED_ANNOTATION]) });
      if (drained.replicas !== undefined) ops.push({ op: 'replace', path: '/spec/replicas', value: drained.replicas });
      if (drained.suspend !== undefined) ops.push({ op: 'add', path: '/spec/suspend', value: drained.suspend });
    }
    if (current && returnedFrom(op, current)) ops.push(...clearReturnedPatch(obj));
    if (!(await this.patch(w, obj, dedupePaths(ops)))) return true;
    const onto = head === op.toRevision ? `the ${op.toVersion} schema` : `the ${op.fromVersion} schema again`;
    this.eventOn(
      op,
      w,
      'Normal',
      'Released',
      `Released onto ${onto}${drained?.replicas !== undefined ? ` with ${drained.replicas} replicas` : ''}`,
    );
    return true;
  }

  /** The returned marker removed from every workload of the release changed back from the operation. */
  async clearReturnedMarkers(op: OperationState): Promise<void> {
    for (const w of this.deps.releaseWorkloads(op.namespace, op.release)) {
      if (!returnedFrom(op, w)) continue;
      const read = await this.read(w);
      if (read) await this.patch(w, read.obj, clearReturnedPatch(read.obj));
    }
  }

  /**
   * A Job the return leaves behind (held since it was created, so it never ran): deleted, only as it
   * was read. False when it changed since the cache saw it: the return is recorded once a reconcile
   * has looked again.
   */
  async deleteLeftBehindJob(op: OperationState, w: WorkloadRecord): Promise<boolean> {
    const read = await this.read(w);
    if (!read?.rec) return true;
    const current = read.rec;
    if (!leftBehind(op, current)) return false;
    try {
      await this.deps.cluster.delete(w.kind, w.namespace, w.name, undefined, {
        uid: String(valueAt(read.obj, ['metadata', 'uid']) ?? ''),
        resourceVersion: current.resourceVersion,
      });
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
    this.deps.logger.warn(
      { operationId: op.id, workload: `job/${w.name}`, version: current.version },
      'deleted the held Job the return leaves behind',
    );
    this.eventOn(
      op,
      w,
      'Warning',
      'HeldJobDeleted',
      `Deleted: held for operation ${op.id} since it was created (it never ran), on ${current.version ?? 'the target version'}; the release is changed back to ${op.fromVersion}, and it would run on a schema that is not its own`,
    );
    return true;
  }

  /** Applies `ops` to the workload as it was read (refused with a 409 when it changed since); false when there are none. */
  private async patch(w: WorkloadRef, obj: JsonObject, ops: JsonPatchOp[]): Promise<boolean> {
    if (ops.length === 0) return false;
    await this.deps.cluster.patchUnchanged(w.kind, obj, ops);
    return true;
  }

  /** An Event on every workload of the release that the operation holds or drained, and the one that opened it. */
  event(op: OperationState, type: EventType, reason: string, message: string): void {
    const targets: WorkloadRef[] = this.deps
      .releaseWorkloads(op.namespace, op.release)
      .filter((w) => w.holdOperation === op.id || w.drained?.operation === op.id);
    const [kind, name] = op.openedBy.split('/') as [WorkloadKind, string];
    if (!targets.some((t) => t.kind === kind && t.name === name)) targets.push({ kind, name, namespace: op.namespace });
    for (const t of targets) this.eventOn(op, t, type, reason, message);
  }

  /** An Event on one workload of the operation. */
  eventOn(
    op: Pick<OperationState, 'namespace'>,
    w: Pick<WorkloadRef, 'kind' | 'name'>,
    type: EventType,
    reason: string,
    message: string,
  ): void {
    const now = new Date().toISOString();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${w.name.slice(0, 200)}.`, namespace: op.namespace },
      involvedObject: { apiVersion: apiVersionOf(w.kind), kind: w.kind, name: w.name, namespace: op.namespace },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: 'airflow-downgrade-guard' },
      reportingComponent: 'airflow-downgrade-guard',
      reportingInstance: this.deps.identity,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    // Queued, not awaited: a step never waits for its Events (the recorder logs any it cannot write).
    this.deps.events.record(op.namespace, event);
  }
}

/** Later operations on the same path win (release patch + replicas restore may both touch spec). */
function dedupePaths(ops: JsonPatchOp[]): JsonPatchOp[] {
  const seen = new Set<string>();
  const out: JsonPatchOp[] = [];
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i] as JsonPatchOp;
    const key = `${op.op === 'test' ? 'test:' : ''}${op.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.unshift(op);
  }
  return out;
}
