// The drain coordinator: for each release with a held rollout, one resumable operation
//   confirm -> downgrade (exec in a pod of the newer version) -> verify -> drain -> release
// driven by whichever replica holds the release's Lease. Every step is idempotent and its state is
// written back to the operation's ConfigMap before the next one starts, so a restarted or other
// replica resumes where the last one stopped.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ANNOTATIONS, type GuardConfig } from '../core/config.js';
import { clearReturnedPatch, holdOperationPatch, releasePatch } from '../core/hold.js';
import { annotationsOf, isJsonObject, valueAt, type WorkloadKind } from '../core/objects.js';
import { readHoldTarget } from '../core/hold.js';
import { downgradeArgv, formatArgv, migrateArgv } from '../core/downgrade-command.js';
import { pointer } from '../core/hold.js';
import type { ReleaseState } from '../core/decide.js';
import { readAlembicRevision } from '../db/alembic.js';
import { isMigrationRunning } from '../db/migration-lock.js';
import { DatabasePools } from '../db/pool.js';
import { Cluster, apiVersionOf, isConflict, resourcePath, type JsonPatchOp } from '../k8s/cluster.js';
import type { ExecOutcome, ExecRunner } from '../k8s/exec.js';
import type { KubeRest } from '../k8s/rest.js';
import { WatchCache } from '../k8s/watch-cache.js';
import { Semaphore } from './semaphore.js';
import { releaseKey } from '../core/release.js';
import { EventQueue } from './event-queue.js';
import { LeaseKeeper } from './lease.js';
import {
  DRAINED_ANNOTATION,
  RUNNER_LABEL,
  chooseExecPod,
  podsBlockingRelease,
  projectPod,
  projectWorkload,
  readDrainedRecord,
  releaseKeyOf,
  ReleaseStateCache,
  unheldValue,
  type PodRecord,
  type WorkloadRecord,
} from './release-view.js';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  isTerminal,
  newOperation,
  openingProblem,
  operationConfigMap,
  operationConfigMapName,
  readOperationConfigMap,
  withStep,
  type OperationState,
  type Order,
  type Phase,
  type StepName,
  type StepRecord,
} from './operation.js';
import { nextPhase, type OperationEvent } from './transitions.js';
import {
  belongsTo,
  freshOperationId,
  returnEvent,
  returnedFrom,
  returnsAfterDone,
  stallOutcome,
} from './membership.js';
import { ResolutionCache } from '../core/resolution-cache.js';
import type { RegistryOptions } from '../registry/client.js';
import { ImageResolver } from './image-resolver.js';
import { resolvedStep, resolveHeldWorkloads, type ResolutionRecord } from './resolution.js';
import { confirm } from './steps/confirm.js';
import { restore } from './steps/restore.js';
import { failed, isBetween, type StepContext, type StepReport, type StepResult } from './steps/context.js';
import { verify } from './steps/verify.js';

export interface CoordinatorOptions {
  config: GuardConfig;
  /** This replica's name, written into Leases. */
  identity: string;
  /** Namespaces to watch; empty = all. */
  namespaces: string[];
  leaseDurationSeconds: number;
  execTimeoutMs: number;
  maxConcurrentExecs: number;
  /** After this long waiting for old pods to go, they are deleted; after twice it, force-deleted. */
  drainTimeoutMs: number;
  /** How often every open operation is looked at even without a watch event. */
  resyncMs: number;
  /** How long to wait between attempts of a step that waits (pods starting, DB retries). */
  pollMs: number;
  /** Written into each new operation: drain before the downgrade (no pod on a schema it does not match), or after it. */
  order: Order;
  /** Attempts of `confirm` while the metadata DB is unreachable before the release stays held. */
  confirmAttempts: number;
  /**
   * A wait on something that may never come (a Secret, the database, a pod to exec in, a drain) is
   * reported at once (Warning Event, `stalled` in the record); after this long the operation is held.
   */
  stallTimeoutMs: number;
  /** The metadata DB of a release: Secret `<release>-metadata`, key `connection`, unless overridden. */
  metadataSecretName: (release: string) => string;
  metadataSecretKey: string;
  /** Used instead of the Secret when set (all releases), e.g. for a DB reached through another address. */
  databaseUrlOverride?: string;
  /** Resolving versions of images held for a resolution: registry mirrors and CAs, probe pod bound, tag TTL. */
  imageResolution?: { registry?: Omit<RegistryOptions, 'dockerConfigs'>; probeTimeoutMs?: number; tagTtlMs?: number };
}

export const DEFAULT_COORDINATOR_OPTIONS: Omit<CoordinatorOptions, 'config' | 'identity'> = {
  namespaces: [],
  leaseDurationSeconds: 15,
  execTimeoutMs: 15 * 60_000,
  maxConcurrentExecs: 4,
  drainTimeoutMs: 10 * 60_000,
  resyncMs: 2_000,
  pollMs: 250,
  order: 'drain-first',
  confirmAttempts: 20,
  stallTimeoutMs: 10 * 60_000,
  metadataSecretName: (release) => `${release}-metadata`,
  metadataSecretKey: 'connection',
};

export type { StepReport } from './steps/context.js';

export interface CoordinatorHooks {
  onStep?: (report: StepReport) => void;
  onPhase?: (operation: OperationState) => void;
  /** Something releaseState(namespace, release) reads may have changed (a cached record, the operation, the DB revision). */
  onReleaseChange?: (namespace: string, release: string) => void;
  /** An operation started (reason) or stopped (undefined) waiting on something that may never come. */
  onStall?: (operation: OperationState, reason: string | undefined) => void;
  /** A held workload's version was resolved (or could not be): what, how, how long. */
  onResolution?: (record: ResolutionRecord) => void;
}

export interface CoordinatorDeps {
  kubeConfig: KubeConfig;
  rest: KubeRest;
  cluster: Cluster;
  exec: ExecRunner;
  logger: Logger;
  hooks?: CoordinatorHooks;
  readRevision?: (url: string) => Promise<string | null>;
  migrationRunning?: (url: string) => Promise<boolean>;
}

interface OperationSummary {
  namespace: string;
  release: string;
  id: string;
  phase: Phase;
  fromVersion: string;
  toVersion: string;
  returnOf?: string;
  resourceVersion: string;
}

type ExecStep = 'downgrade' | 'roll-forward' | 'forward';
/** Event reasons of each command the coordinator execs (contracts: users filter on them). */
const EXEC_EVENT_REASONS: Record<ExecStep, { running: string; succeeded: string; failed: string }> = {
  downgrade: { running: 'DowngradeRunning', succeeded: 'DowngradeSucceeded', failed: 'DowngradeFailed' },
  'roll-forward': { running: 'RollForwardRunning', succeeded: 'RollForwardSucceeded', failed: 'RollForwardFailed' },
  forward: { running: 'MigrateForwardRunning', succeeded: 'MigrateForwardSucceeded', failed: 'MigrateForwardFailed' },
};

/** How long a metadata URL read from its Secret is reused. */
const METADATA_URL_TTL_MS = 30_000;
/** How long stop() waits for queued Events. */
const EVENT_FLUSH_MS = 2_000;

const WORKLOAD_KINDS: WorkloadKind[] = ['Deployment', 'StatefulSet', 'Job', 'CronJob'];

/** What reading a release's database needs of an operation. */
type ReleaseRef = Pick<OperationState, 'namespace' | 'release'>;

export class Coordinator {
  readonly workloads = new Map<WorkloadKind, WatchCache<WorkloadRecord>>();
  pods!: WatchCache<PodRecord>;
  operations!: WatchCache<OperationSummary>;
  private readonly queue = new Map<string, { running: boolean; again: boolean }>();
  private readonly execSlots: Semaphore;
  private readonly lastRevision = new Map<string, string>();
  private readonly runnerStarted = new Map<string, number>();
  /** Per operation: no new attempt of a step failing on something outside us before this time. */
  private readonly retryAt = new Map<string, number>();
  private resyncTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly events: EventQueue;
  private readonly leases: LeaseKeeper;
  private readonly dbPools = new DatabasePools();
  /** Per release: the operation state last written or read here, used while the watch cache has seen nothing newer. */
  private readonly known = new Map<string, { op: OperationState; resourceVersion: string }>();
  /** Releases whose state must be read from the API on the next reconcile (a create lost a race). */
  private readonly readNext = new Set<string>();
  private readonly metadataUrls = new Map<string, { url: string; at: number }>();
  /** Admission's view of each release, recomputed only when the release's cached records change. */
  /** What the step modules (steps/) may use of this coordinator. */
  private readonly stepContext: StepContext;
  /** Versions of images whose tag names none: the resolution cache admission reads, and how they are resolved. */
  readonly resolver: ImageResolver;
  private readonly releaseStates = new ReleaseStateCache(() => ({
    workloads: this.workloads.values(),
    pods: this.pods,
  }));

  constructor(
    private readonly options: CoordinatorOptions,
    private readonly deps: CoordinatorDeps,
  ) {
    this.execSlots = new Semaphore(options.maxConcurrentExecs);
    this.events = new EventQueue({
      write: (namespace, event) => deps.cluster.create('Event', namespace, event),
      logger: deps.logger,
    });
    this.leases = new LeaseKeeper({
      identity: options.identity,
      durationSeconds: options.leaseDurationSeconds,
      cluster: deps.cluster,
      logger: deps.logger,
    });
    this.resolver = new ImageResolver({
      cluster: deps.cluster,
      exec: deps.exec,
      logger: deps.logger,
      cache: new ResolutionCache(options.imageResolution?.tagTtlMs),
      registry: options.imageResolution?.registry ?? {},
      probeTimeoutMs: options.imageResolution?.probeTimeoutMs ?? 120_000,
    });
    this.stepContext = {
      readRevision: (op) => this.readRevision(op),
      report: (report) => this.report(report),
      emitEvent: (op, type, reason, message) => this.emitEvent(op, type, reason, message),
      stall: (op, reason, on) => this.stall(op, reason, on),
      backingOff: (op) => this.backingOff(op),
      backOff: (op, attempts) => this.backOff(op, attempts),
      rollForward: (op, at, why, failedStep) => this.rollForward(op, at, why, failedStep),
      releaseWorkloads: (op) => this.releaseWorkloads(op.namespace, op.release),
      restoreWorkload: (op, w, head) => this.restoreWorkload(op, w, head),
      confirmAttempts: options.confirmAttempts,
    };
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  start(): void {
    const { config } = this.options;
    for (const kind of WORKLOAD_KINDS) {
      const cache = new WatchCache<WorkloadRecord>(this.deps.kubeConfig, this.deps.rest, {
        name: kind,
        paths: this.paths(kind),
        project: (obj) => projectWorkload(kind, obj, config, this.resolver.lookup),
        groupBy: releaseKeyOf,
        onChange: (_key, rec, prev) => {
          this.releaseChanged(rec, prev);
          const r = rec ?? prev;
          if (r && (rec?.holdOperation || rec?.drained || rec?.resolving || prev?.holdOperation || prev?.drained))
            this.schedule(r.namespace, r.release);
        },
        logger: this.deps.logger,
      });
      this.workloads.set(kind, cache);
      cache.start();
    }
    this.pods = new WatchCache<PodRecord>(this.deps.kubeConfig, this.deps.rest, {
      name: 'Pod',
      paths: this.paths('Pod'),
      project: (obj) => projectPod(obj, config, this.resolver.lookup),
      groupBy: releaseKeyOf,
      onChange: (_key, rec, prev) => {
        this.releaseChanged(rec, prev);
        const r = rec ?? prev;
        if (r && this.hasOpenOperation(r.namespace, r.release)) this.schedule(r.namespace, r.release);
      },
      logger: this.deps.logger,
    });
    this.pods.start();
    this.operations = new WatchCache<OperationSummary>(this.deps.kubeConfig, this.deps.rest, {
      name: 'Operation',
      paths: this.paths('ConfigMap'),
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}`,
      project: summariseOperation,
      onChange: (_key, rec, prev) => {
        const r = rec ?? prev;
        this.releaseChanged(rec, prev);
        if (!rec && prev) this.known.delete(`${prev.namespace}/${prev.release}`);
        if (r) this.schedule(r.namespace, r.release);
      },
      logger: this.deps.logger,
    });
    this.operations.start();
    this.resyncTimer = setInterval(() => this.resync(), this.options.resyncMs);
  }

  /** True once every cache has listed once: the admission path then sees the whole cluster. */
  get ready(): boolean {
    return [...this.workloads.values()].every((c) => c.ready) && this.pods.ready && this.operations.ready;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const c of this.workloads.values()) c.stop();
    this.pods?.stop();
    this.operations?.stop();
    await Promise.allSettled([...this.inFlight]);
    await Promise.race([this.events.flush(), new Promise((r) => setTimeout(r, EVENT_FLUSH_MS).unref())]);
    await this.dbPools.close();
  }

  /** What admission needs to know about a release, from the caches only (never waits). */
  releaseState(namespace: string, release: string): ReleaseState {
    const op = this.operations?.get(namespace, operationConfigMapName(release));
    const summary = op
      ? {
          id: op.id,
          fromVersion: op.fromVersion,
          toVersion: op.toVersion,
          phase: op.phase,
          ...(op.returnOf ? { returnOf: op.returnOf } : {}),
        }
      : undefined;
    const operation = op && !isTerminal(op.phase) ? summary : undefined;
    const state = this.releaseStates.get(
      namespace,
      release,
      operation,
      this.lastRevision.get(`${namespace}/${release}`),
    );
    const imageVersions = this.resolver.snapshot();
    const withImages = Object.keys(imageVersions).length > 0 ? { ...state, imageVersions } : state;
    return op && isTerminal(op.phase) ? { ...withImages, lastOperation: summary } : withImages;
  }

  /** Tells the hook which releases a cache change touched (a record may move between releases). */
  private releaseChanged(
    rec: { namespace: string; release: string } | undefined,
    prev: { namespace: string; release: string } | undefined,
  ): void {
    const notify = this.deps.hooks?.onReleaseChange;
    if (!notify) return;
    if (rec) notify(rec.namespace, rec.release);
    if (prev && (!rec || prev.namespace !== rec.namespace || prev.release !== rec.release))
      notify(prev.namespace, prev.release);
  }

  // ---- scheduling --------------------------------------------------------------------------

  private paths(kind: WorkloadKind | 'Pod' | 'ConfigMap'): string[] {
    const base = (ns?: string): string => resourcePath(kind, ns);
    return this.options.namespaces.length === 0 ? [base()] : this.options.namespaces.map((ns) => base(ns));
  }

  private *allWorkloads(): Iterable<WorkloadRecord> {
    for (const cache of this.workloads.values()) yield* cache.values();
  }

  private hasOpenOperation(namespace: string, release: string): boolean {
    const op = this.operations?.get(namespace, operationConfigMapName(release));
    return op !== undefined && !isTerminal(op.phase);
  }

  private resync(): void {
    const releases = new Set<string>();
    for (const w of this.allWorkloads())
      if (w.holdOperation || w.drained || w.resolving) releases.add(`${w.namespace}\u0000${w.release}`);
    for (const op of this.operations.values())
      if (!isTerminal(op.phase)) releases.add(`${op.namespace}\u0000${op.release}`);
    for (const key of releases) {
      const [ns, release] = key.split('\u0000') as [string, string];
      this.schedule(ns, release);
    }
  }

  /** Runs reconcile for a release, never two at once for the same release. */
  schedule(namespace: string, release: string): void {
    if (this.stopped) return;
    const key = `${namespace}/${release}`;
    const entry = this.queue.get(key);
    if (entry) {
      entry.again = true;
      return;
    }
    const state = { running: true, again: false };
    this.queue.set(key, state);
    const run = async (): Promise<void> => {
      try {
        do {
          state.again = false;
          await this.reconcile(namespace, release).catch((error: unknown) => {
            this.deps.logger.error(
              { namespace, release, err: (error as Error).message },
              'reconcile failed; will retry',
            );
          });
        } while (state.again && !this.stopped);
      } finally {
        this.queue.delete(key);
      }
    };
    const p = run();
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  // ---- reconcile ---------------------------------------------------------------------------

  private releaseWorkloads(namespace: string, release: string): WorkloadRecord[] {
    const key = releaseKey(namespace, release);
    return [...this.workloads.values()].flatMap((cache) => [...cache.group(key)]);
  }

  async reconcile(namespace: string, release: string): Promise<void> {
    const current = await this.currentOperation(namespace, release);
    let op = current.op;
    let cmVersion = current.resourceVersion;
    const workloads = this.releaseWorkloads(namespace, release);
    const held = workloads.filter((w) => w.holdOperation);
    // Held for a resolution: released or turned into a downgrade's hold (whose watch event brings us back).
    if (workloads.some((w) => w.resolving) && (await this.acquireLease(namespace, release)))
      await this.resolveHeld(namespace, release, workloads, op && !isTerminal(op.phase) ? op : undefined);

    // A hold naming no open operation opens one; a hold naming a finished one opens a new one,
    // unless it is a late member of a finished downgrade whose schema is still where it left it.
    let opening: WorkloadRecord | undefined;
    let lateMembersOk: boolean | undefined;
    for (const w of held) {
      if (op && !isTerminal(op.phase)) break;
      // Changed back to the from-version after the downgrade finished: a return operation.
      if (op && returnsAfterDone(op, w)) {
        opening = w;
        break;
      }
      if (op && belongsTo(op, w)) {
        // An abort leaves its holds in place on purpose.
        if (op.phase === 'aborted') continue;
        // Joined the downgrade as it finished: the schema is still the target's, so releasing it is safe.
        if (op.phase === 'done' && (lateMembersOk ??= (await this.readRevision(op)) === op.toRevision)) continue;
      }
      opening = w;
      break;
    }
    if (opening) {
      const opened = await this.createOperation(opening, op, cmVersion);
      if (!opened) return; // not opened (someone else did, or the hold is not the guard's); a watch event brings us back
      op = opened.op;
      cmVersion = opened.resourceVersion;
    }
    if (!op || cmVersion === undefined) return;
    if (op.phase === 'done') await this.restoreLateWorkloads(op);
    if (isTerminal(op.phase)) {
      // Changed back after the operation ended (an aborted one's holds): nothing left to return from.
      if (workloads.some((w) => returnedFrom(op!, w))) await this.clearReturnedMarkers(op);
      return;
    }
    await this.joinAdmittedHolds(op, held);

    const back = await this.applyReturn(op, cmVersion);
    if (!back) return;
    ({ op, resourceVersion: cmVersion } = back);
    if (isTerminal(op.phase) || op.phase === 'held') return; // held: waits for `retry` or `abort`

    if (!(await this.acquireLease(namespace, release))) return;
    await this.drive(op, cmVersion);
  }

  private async resolveHeld(
    namespace: string,
    release: string,
    workloads: WorkloadRecord[],
    open: OperationState | undefined,
  ): Promise<void> {
    await resolveHeldWorkloads(
      {
        cluster: this.deps.cluster,
        config: this.options.config,
        logger: this.deps.logger,
        resolver: this.resolver,
        readRevision: (ns, name) => this.readRevision({ namespace: ns, release: name }),
        emitEvent: (ns, kind, name, type, reason, message) =>
          this.emitEventOn({ namespace: ns }, kind, name, type, reason, message),
        ...(this.deps.hooks?.onResolution ? { onResolution: this.deps.hooks.onResolution } : {}),
      },
      workloads,
      open,
    );
    this.deps.hooks?.onReleaseChange?.(namespace, release);
  }

  /** Records a return to the from-version when one happened (undefined: lost a race on the record). */
  private async applyReturn(
    op: OperationState,
    resourceVersion: string,
  ): Promise<{ op: OperationState; resourceVersion: string } | undefined> {
    const event = returnEvent(op, this.releaseWorkloads(op.namespace, op.release), this.cachesReady());
    if (!event) return { op, resourceVersion };
    if (event === 'reverted') await this.clearReturnedMarkers(op);
    const detail =
      event === 'reverted'
        ? 'no held workload remains: the change was reverted'
        : `every held workload is back at ${op.fromVersion}: moving the schema forward again`;
    return this.saveStep(op, resourceVersion, event === 'reverted' ? 'cancel' : 'forward', 'ok', 0, detail, event);
  }

  /** Holds written under the id the webhook derived while this operation has another (a repeated downgrade) join it. */
  private async joinAdmittedHolds(op: OperationState, held: WorkloadRecord[]): Promise<void> {
    if (!op.admittedAs) return;
    for (const w of held) {
      if (w.holdOperation !== op.admittedAs) continue;
      const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
      const patch = obj ? holdOperationPatch(obj, op.id) : [];
      if (patch.length === 0) continue;
      await this.deps.cluster.patchUnchanged(w.kind, obj, patch);
      this.deps.logger.info(
        { operationId: op.id, workload: `${w.kind.toLowerCase()}/${w.name}`, admittedAs: op.admittedAs },
        'hold joined the open operation',
      );
    }
  }

  private cachesReady(): boolean {
    return this.ready;
  }

  /**
   * The release's operation state without a GET when possible: what this replica last wrote or read,
   * unless the watch cache has seen a newer version; nothing when the synced cache has none. A stale
   * answer costs a 409 on the next write (every write is conditional on the resourceVersion).
   */
  private async currentOperation(
    namespace: string,
    release: string,
  ): Promise<{ op?: OperationState; resourceVersion?: string }> {
    const key = `${namespace}/${release}`;
    const cached = this.operations?.get(namespace, operationConfigMapName(release));
    const known = this.known.get(key);
    if (!this.readNext.has(key)) {
      if (known && (!cached || !isNewerVersion(cached.resourceVersion, known.resourceVersion))) return known;
      if (!known && !cached && this.cachesReady()) return {};
    }
    this.readNext.delete(key);
    const cm = await this.deps.cluster.find<Record<string, unknown>>(
      'ConfigMap',
      namespace,
      operationConfigMapName(release),
    );
    if (!cm) {
      this.known.delete(key);
      return {};
    }
    const op = this.readOperation(cm);
    const resourceVersion = String(valueAt(cm, ['metadata', 'resourceVersion']) ?? '');
    if (op) this.known.set(key, { op, resourceVersion });
    else this.known.delete(key);
    return op ? { op, resourceVersion } : { resourceVersion };
  }

  private readOperation(cm: Record<string, unknown>): OperationState | undefined {
    try {
      return readOperationConfigMap(cm)?.op;
    } catch (error) {
      this.deps.logger.error({ err: (error as Error).message }, 'unreadable operation state; leaving it alone');
      return undefined;
    }
  }

  /**
   * Opens the operation a hold names. After an earlier operation of the release (whatever its end),
   * the id is fresh: the id the webhook derives repeats for the same release and schema pair, and
   * every downgrade must be its own operation. Holds admitted under the derived id join it.
   */
  private async createOperation(
    w: WorkloadRecord,
    previous: OperationState | undefined,
    existingVersion: string | undefined,
  ): Promise<{ op: OperationState; resourceVersion: string } | undefined> {
    const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
    if (!obj) return undefined;
    const target = readHoldTarget(obj);
    if (!target?.fromRevision) {
      this.deps.logger.warn(
        { namespace: w.namespace, workload: `${w.kind}/${w.name}` },
        'held workload lacks operation annotations; not opening',
      );
      return undefined;
    }
    const { operationId: admittedAs, fromVersion, toVersion, fromRevision, toRevision } = target;
    const problem = openingProblem({ fromVersion, toVersion, fromRevision, toRevision });
    if (problem) {
      this.deps.logger.error(
        { namespace: w.namespace, workload: `${w.kind}/${w.name}`, problem },
        'held workload has operation annotations the guard did not write; not opening',
      );
      return undefined;
    }
    const now = new Date();
    const id = previous ? freshOperationId(w.namespace, w.release, admittedAs, previous.id, now) : admittedAs;
    let op: OperationState;
    try {
      op = newOperation({
        id,
        order: this.options.order,
        namespace: w.namespace,
        release: w.release,
        fromVersion,
        toVersion,
        fromRevision,
        toRevision,
        openedBy: `${w.kind}/${w.name}`,
        now,
      });
      if (id !== admittedAs) op = { ...op, admittedAs };
      const resolved = annotationsOf(obj)[ANNOTATIONS.resolved];
      if (resolved !== undefined) op = withStep(op, resolvedStep(resolved, now));
      if (previous && returnsAfterDone(previous, w)) op = { ...op, returnOf: previous.id };
    } catch (error) {
      this.deps.logger.error(
        { err: (error as Error).message, workload: `${w.kind}/${w.name}` },
        'held workload has invalid operation annotations',
      );
      return undefined;
    }
    // The Lease is claimed while the state is written (the first step needs both); drive() waits
    // for this claim, or tries again when it failed.
    void this.leases.acquire(op.namespace, op.release).catch(() => false);
    try {
      const body = operationConfigMap(op, existingVersion);
      const saved = existingVersion
        ? await this.deps.cluster.replace('ConfigMap', op.namespace, operationConfigMapName(op.release), body)
        : await this.deps.cluster.create('ConfigMap', op.namespace, body);
      const after = previous
        ? ` (after operation ${previous.id}, ${previous.phase}; holds admitted as ${admittedAs} join it)`
        : '';
      this.report({
        operation: op,
        step: 'open',
        event: 'end',
        outcome: 'ok',
        durationMs: 0,
        detail: `opened by ${op.openedBy}: ${fromVersion} -> ${toVersion}${after}`,
      });
      if (op.returnOf) {
        await this.emitEvent(
          op,
          'Warning',
          'ReturnAfterDowngrade',
          `Release changed back to ${fromVersion} after downgrade ${op.returnOf} finished; no migration Job comes with a rollback, so operation ${op.id} moves the schema forward ${toRevision} -> ${fromRevision}; rollout held until it matches`,
        );
      } else {
        await this.emitEvent(
          op,
          'Normal',
          'DowngradeOpened',
          `Downgrade ${fromVersion} -> ${toVersion} (schema ${fromRevision} -> ${toRevision}) opened as operation ${op.id}; rollout held until the schema matches`,
        );
      }
      const resourceVersion = String(valueAt(saved, ['metadata', 'resourceVersion']) ?? '');
      this.known.set(`${op.namespace}/${op.release}`, { op, resourceVersion });
      return { op, resourceVersion };
    } catch (error) {
      if (isConflict(error)) {
        // Someone else opened or changed it: read it from the API next time, not from memory.
        this.known.delete(`${op.namespace}/${op.release}`);
        this.readNext.add(`${op.namespace}/${op.release}`);
        return undefined;
      }
      throw error;
    }
  }

  /** Runs steps until the operation waits, ends, is held, or this replica loses the Lease. */
  private async drive(start: OperationState, startVersion: string): Promise<void> {
    let op = start;
    let version = startVersion;
    for (let guard = 0; guard < 50 && !this.stopped; guard++) {
      if (isTerminal(op.phase) || op.phase === 'held') return;
      if (!(await this.acquireLease(op.namespace, op.release))) return;
      // The release may have been changed back while the last step ran (an exec takes minutes).
      const back = await this.applyReturn(op, version);
      if (!back) return;
      ({ op, resourceVersion: version } = back);
      if (isTerminal(op.phase) || op.phase === 'held') return;
      const began = Date.now();
      const step = phaseStep(op.phase);
      let result: StepResult;
      let lost: boolean;
      try {
        // The Lease is renewed while the step runs (an exec may outlast it many times over).
        ({ value: result, lost } = await this.leases.whileHolding(op.namespace, op.release, () => this.runPhase(op)));
      } catch (error) {
        // Something outside us failed (API, database, Secret): a stall, retried until the bound.
        const message = (error as Error).message;
        this.deps.logger.warn({ operation: op.id, phase: op.phase, err: message }, 'step failed; will retry');
        this.report({
          operation: op,
          step,
          event: 'end',
          outcome: 'waiting',
          durationMs: Date.now() - began,
          error: message,
        });
        ({ value: result, lost } = await this.leases
          .whileHolding(op.namespace, op.release, () => this.stall(op, `${step}: ${message}`))
          .catch(() => ({ value: { wait: true as const, op }, lost: true })));
        if (lost) {
          this.later(op);
          return;
        }
      }
      if (lost) {
        // Another replica drives now (or may): it resumes from the last written state.
        this.deps.logger.warn(
          { operation: op.id, phase: op.phase },
          'lost the Lease while the step ran; its result is not written',
        );
        this.report({
          operation: op,
          step,
          event: 'end',
          outcome: 'waiting',
          durationMs: Date.now() - began,
          detail: 'lost the Lease; the step result was discarded',
        });
        return;
      }
      if ('wait' in result) {
        if (result.op !== op) version = await this.save(result.op, version);
        // Waits on pods end with a pod watch event; the resync is their fallback, so no poll timer.
        if (result.on !== 'watch') this.later(result.op);
        return;
      }
      const next = nextPhase(op.phase, result.event, op.heldFrom);
      const outcome: StepRecord['outcome'] = next === 'held' ? 'held' : 'ok';
      const detail = next === 'held' ? result.op.heldReason : undefined;
      const saved = await this.saveStep(
        result.op,
        version,
        result.as ?? step,
        outcome,
        Date.now() - began,
        detail,
        result.event,
        result.before,
      );
      if (!saved) return; // lost a race on the state: start over from the cluster
      op = saved.op;
      version = saved.resourceVersion;
    }
  }

  private later(op: OperationState): void {
    setTimeout(() => this.schedule(op.namespace, op.release), this.options.pollMs).unref();
  }

  private async runPhase(op: OperationState): Promise<StepResult> {
    switch (op.phase) {
      case 'confirm':
        return confirm(this.stepContext, op);
      case 'downgrade':
        return this.downgrade(op);
      case 'verify':
        return verify(this.stepContext, op);
      case 'drain':
        return this.drain(op);
      case 'release':
        return this.release(op);
      case 'quiesce':
        return this.drain(op);
      case 'forward':
        return this.forward(op);
      case 'restore':
        return restore(this.stepContext, op);
      default:
        return { wait: true, op };
    }
  }

  // ---- steps -------------------------------------------------------------------------------

  /** The release's metadata URL, read from its Secret at most every METADATA_URL_TTL_MS (and again after a DB error). */
  private async metadataUrl(op: ReleaseRef): Promise<string> {
    if (this.options.databaseUrlOverride) return this.options.databaseUrlOverride;
    const key = `${op.namespace}/${op.release}`;
    const cached = this.metadataUrls.get(key);
    if (cached && Date.now() - cached.at < METADATA_URL_TTL_MS) return cached.url;
    const url = await this.readMetadataSecret(op);
    this.metadataUrls.set(key, { url, at: Date.now() });
    return url;
  }

  /** After a failed probe: the next one reads the Secret again (rotated password) and connects afresh. */
  private async forgetDatabase(op: ReleaseRef, url: string): Promise<void> {
    this.metadataUrls.delete(`${op.namespace}/${op.release}`);
    await this.dbPools.discard(url);
  }

  private async readMetadataSecret(op: ReleaseRef): Promise<string> {
    const name = this.options.metadataSecretName(op.release);
    const secret = await this.deps.cluster.find('Secret', op.namespace, name);
    if (!secret) throw new Error(`metadata Secret ${op.namespace}/${name} not found`);
    const value = valueAt(secret, ['data', this.options.metadataSecretKey]);
    if (typeof value !== 'string')
      throw new Error(`metadata Secret ${op.namespace}/${name} has no key '${this.options.metadataSecretKey}'`);
    return Buffer.from(value, 'base64').toString('utf8');
  }

  private async readRevision(op: ReleaseRef): Promise<string | null> {
    const url = await this.metadataUrl(op);
    let revision: string | null;
    try {
      revision = this.deps.readRevision
        ? await this.deps.readRevision(url)
        : (await readAlembicRevision(url, { timeoutMs: 5000, pools: this.dbPools })).revision;
    } catch (error) {
      await this.forgetDatabase(op, url);
      throw error;
    }
    if (revision && this.lastRevision.get(`${op.namespace}/${op.release}`) !== revision) {
      this.lastRevision.set(`${op.namespace}/${op.release}`, revision);
      this.deps.hooks?.onReleaseChange?.(op.namespace, op.release);
    }
    return revision;
  }

  private async migrationRunning(op: OperationState): Promise<boolean> {
    const url = await this.metadataUrl(op);
    try {
      return this.deps.migrationRunning
        ? await this.deps.migrationRunning(url)
        : await isMigrationRunning(url, 5000, this.dbPools);
    } catch (error) {
      await this.forgetDatabase(op, url);
      throw error;
    }
  }

  private backingOff(op: OperationState): boolean {
    return Date.now() < (this.retryAt.get(op.id) ?? 0);
  }

  /** Exponential backoff from pollMs, capped at 5 s: our own ConfigMap write must not trigger the next attempt at once. */
  private backOff(op: OperationState, attempts: number): void {
    this.retryAt.set(op.id, Date.now() + Math.min(this.options.pollMs * 2 ** Math.min(attempts, 10), 5000));
  }

  /** Steps 2 and 3: pick the pod, run the downgrade there, and deal with every way it can end. */
  private async downgrade(op: OperationState): Promise<StepResult> {
    if (this.backingOff(op)) return { wait: true, op };
    if (await this.migrationRunning(op)) {
      // A downgrade from an earlier attempt (lost connection, restarted guard) is still running.
      this.report({
        operation: op,
        step: 'downgrade',
        event: 'end',
        outcome: 'waiting',
        detail: 'a migration holds the database lock; waiting for it',
      });
      return this.stall(op, 'a migration holds the database lock; waiting for it');
    }
    const revision = await this.readRevision(op);
    if (revision === op.toRevision) return { event: 'downgraded', op };

    const pod = await this.execPod(op);
    if (!pod) return { wait: true, op, on: 'watch' };
    const withPod: OperationState = { ...op, execPod: pod };
    const argv = downgradeArgv(op.toRevision);
    const outcome = await this.runInPod(withPod, 'downgrade', argv);
    if (outcome.exitCode === 0) return { event: 'downgraded', op: withPod };
    if (outcome.notStarted && op.attempts + 1 < this.options.confirmAttempts) {
      // The API server refused the exec (429/5xx, timeout): the command never ran, so try again.
      this.backOff(op, op.attempts + 1);
      return { wait: true, op: { ...withPod, attempts: op.attempts + 1 } };
    }

    // Failed, hung or lost: find out where the schema is before deciding anything.
    if (await this.migrationRunning(withPod)) return { wait: true, op: withPod };
    const after = await this.readRevision(withPod);
    if (after === op.toRevision) return { event: 'downgraded', op: withPod };
    const why = outcome.error ?? `exit code ${outcome.exitCode}`;
    if (after === op.fromRevision) {
      await this.deleteRunner(withPod);
      const meanwhile =
        op.order === 'drain-first'
          ? `the release stays drained while held (changing it back to ${op.fromVersion} restores it)`
          : 'the release keeps running it';
      return failed(
        withPod,
        `downgrade failed in pod ${pod.name} (${why}); the schema is unchanged at ${op.fromVersion}, ${meanwhile}`,
      );
    }
    return this.rollForward(withPod, after, why, {
      step: 'downgrade',
      outcome: 'failed',
      at: new Date().toISOString(),
      durationMs: outcome.durationMs,
      detail: `stopped at ${after ?? '(none)'}: ${why}`.slice(0, 2000),
    });
  }

  /** A downgrade that stopped halfway is migrated forward again with the newer image. */
  // Recorded as: <failed step> failed, roll-forward ok|failed, hold held.
  private async rollForward(
    op: OperationState,
    at: string | null,
    why: string,
    failedStep: StepRecord,
  ): Promise<StepResult> {
    const argv = migrateArgv(op.fromRevision);
    const outcome = await this.runInPod(op, 'roll-forward', argv);
    const after = await this.readRevision(op);
    await this.deleteRunner(op);
    const rolled = after === op.fromRevision;
    const record: StepRecord = {
      step: 'roll-forward',
      outcome: rolled ? 'ok' : 'failed',
      at: new Date().toISOString(),
      durationMs: outcome.durationMs,
      detail:
        `"${formatArgv(argv)}" in pod ${op.execPod?.name ?? '(none)'}: ${outcome.error ?? `exit ${outcome.exitCode}`}; schema now at ${after ?? '(none)'}`.slice(
          0,
          2000,
        ),
    };
    const held = rolled
      ? failed(
          op,
          `downgrade stopped at revision ${at ?? '(none)'} (${why}); migrated forward again to ${op.fromRevision} so the running ${op.fromVersion} matches; the release stays held`,
        )
      : failed(
          op,
          `downgrade stopped at revision ${at ?? '(none)'} (${why}) and rolling forward failed (${outcome.error ?? `exit ${outcome.exitCode}`}, now at ${after ?? '(none)'}); OPERATOR ACTION NEEDED: the release stays held`,
        );
    return { ...held, before: [failedStep, record], as: 'hold' };
  }

  private async runInPod(op: OperationState, step: ExecStep, argv: string[]): Promise<ExecOutcome> {
    const pod = op.execPod!;
    const command = formatArgv(argv);
    const reasons = EXEC_EVENT_REASONS[step];
    this.report({ operation: op, step, event: 'start', execPod: pod.name, command: argv });
    await this.emitEvent(op, 'Normal', reasons.running, `Running "${command}" in pod ${pod.name}`);
    const returnPermit = await this.execSlots.acquire();
    let outcome: ExecOutcome;
    try {
      outcome = await this.deps.exec({
        namespace: op.namespace,
        pod: pod.name,
        container: pod.container,
        argv,
        timeoutMs: this.options.execTimeoutMs,
        onOutput: (stream, text) => {
          for (const line of text.split('\n')) {
            if (line.trim())
              this.deps.logger.info(
                { operation: op.id, pod: pod.name, stream, line: line.slice(0, 1000) },
                'exec output',
              );
          }
        },
      });
    } finally {
      returnPermit();
    }
    const ok = outcome.exitCode === 0;
    const output = (outcome.stdout + outcome.stderr).slice(-4096);
    this.report({
      operation: op,
      step,
      event: 'end',
      outcome: ok ? 'ok' : 'failed',
      durationMs: outcome.durationMs,
      execPod: pod.name,
      command: argv,
      ...(outcome.exitCode !== undefined ? { exitCode: outcome.exitCode } : {}),
      output,
      ...(outcome.error ? { error: outcome.error } : {}),
    });
    await this.emitEvent(
      op,
      ok ? 'Normal' : 'Warning',
      ok ? reasons.succeeded : reasons.failed,
      ok
        ? `"${command}" finished in ${outcome.durationMs} ms`
        : `"${command}" failed: ${outcome.error ?? `exit code ${outcome.exitCode}`}`,
    );
    return outcome;
  }

  /** A Running, Ready pod of the newer version; else a short-lived runner pod from its template. */
  private async execPod(op: OperationState): Promise<OperationState['execPod'] | undefined> {
    const chosen = chooseExecPod(
      this.pods.group(releaseKey(op.namespace, op.release)),
      op.release,
      op.namespace,
      op.fromRevision,
    );
    if (chosen) {
      const runner = chosen.runnerFor === op.release;
      if (!op.execPod || op.execPod.name !== chosen.name) {
        this.report({
          operation: op,
          step: 'choose-exec-pod',
          event: 'end',
          outcome: 'ok',
          execPod: chosen.name,
          detail: `${chosen.component} pod ${chosen.name}${runner ? ' (runner)' : ''}`,
        });
      }
      return { name: chosen.name, container: chosen.container!, component: chosen.component, runner };
    }
    await this.ensureRunner(op);
    return undefined;
  }

  private runnerName(op: OperationState): string {
    const hash = createHash('sha256').update(`${op.namespace}/${op.release}/${op.id}`).digest('hex').slice(0, 10);
    return `airflow-downgrade-guard-runner-${hash}`;
  }

  private async ensureRunner(op: OperationState): Promise<void> {
    const name = this.runnerName(op);
    if (this.pods.get(op.namespace, name) || (await this.deps.cluster.find('Pod', op.namespace, name))) return;
    const template = await this.newerTemplate(op);
    if (!template) {
      throw new Error(`no running pod of ${op.fromVersion} and no pod template of it to start a runner from`);
    }
    const spec = runnerPodSpec(template.template, template.container);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: op.namespace,
        labels: { [RUNNER_LABEL]: op.release.slice(0, 63), [MANAGED_BY_LABEL]: MANAGED_BY },
        annotations: { [ANNOTATIONS.airflowVersion]: op.fromVersion, [ANNOTATIONS.operation]: op.id },
      },
      spec,
    };
    await this.deps.cluster.create('Pod', op.namespace, pod);
    this.runnerStarted.set(op.id, Date.now());
    this.report({
      operation: op,
      step: 'choose-exec-pod',
      event: 'end',
      outcome: 'waiting',
      execPod: name,
      detail: `no pod of ${op.fromVersion} runs; started runner pod ${name} from ${template.source}`,
    });
    await this.emitEvent(
      op,
      'Normal',
      'RunnerPodStarted',
      `No pod of ${op.fromVersion} is running; started short-lived runner pod ${name} from ${template.source} to run the downgrade`,
    );
  }

  private async deleteRunner(op: OperationState): Promise<void> {
    const name = this.runnerName(op);
    // Ask the API only when a runner may exist that the pod cache has not shown yet.
    const mayExist = this.runnerStarted.has(op.id) || op.execPod?.runner === true;
    if (this.pods.get(op.namespace, name) || (mayExist && (await this.deps.cluster.find('Pod', op.namespace, name)))) {
      await this.deps.cluster.delete('Pod', op.namespace, name, 0);
    }
  }

  /**
   * The pod template of the newer version: a ReplicaSet that ran it first (it stays as it was, while a
   * workload still on that version may be changed by the rollout in progress at any moment), else a
   * workload (StatefulSets have no ReplicaSets) whose spec is, when read, still on it.
   */
  private async newerTemplate(
    op: OperationState,
  ): Promise<{ template: Record<string, unknown>; container: string; source: string } | undefined> {
    const replicaSets = await this.deps.cluster.list('ReplicaSet', op.namespace);
    for (const rs of replicaSets.items) {
      const rec = projectWorkload('Deployment', rs, this.options.config, this.resolver.lookup);
      const template = valueAt(rs, ['spec', 'template']);
      if (
        rec &&
        rec.release === op.release &&
        rec.head === op.fromRevision &&
        rec.role === 'metadata-db' &&
        isJsonObject(template)
      ) {
        const container = mainContainerName(template, rec.component);
        if (container)
          return { template, container, source: `replicaset/${String(valueAt(rs, ['metadata', 'name']))}` };
      }
    }
    const candidates = this.releaseWorkloads(op.namespace, op.release).filter(
      (w) => w.head === op.fromRevision && (w.kind === 'Deployment' || w.kind === 'StatefulSet'),
    );
    for (const w of candidates) {
      const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
      const template = valueAt(obj, ['spec', 'template']);
      const rec = obj ? projectWorkload(w.kind, obj, this.options.config, this.resolver.lookup) : undefined;
      if (isJsonObject(template) && rec?.head === op.fromRevision) {
        const container = mainContainerName(template, w.component);
        if (container) return { template, container, source: `${w.kind.toLowerCase()}/${w.name}` };
      }
    }
    return undefined;
  }

  /**
   * Step 5 (order downgrade-first), or step 2 as `quiesce` (drain-first: before the downgrade): scale
   * every DB-touching workload of the release to 0, suspend CronJobs, wait for old pods.
   */
  private async drain(op: OperationState): Promise<StepResult> {
    const first = op.phase === 'quiesce';
    // The runner ran the downgrade; in drain-first there is none yet (the downgrade follows).
    if (!first) await this.deleteRunner(op);
    await this.scaleReleaseDown(op);
    const blocking = podsBlockingRelease(
      this.pods.group(releaseKey(op.namespace, op.release)),
      op.release,
      op.namespace,
      op.toRevision,
    );
    if (blocking.length > 0) {
      const started: OperationState = op.drainStartedAt ? op : { ...op, drainStartedAt: new Date().toISOString() };
      return this.pressStragglers(started, blocking);
    }
    this.report({
      operation: op,
      step: first ? 'quiesce' : 'drain',
      event: 'end',
      outcome: 'ok',
      detail: `no pod of ${op.fromVersion} left`,
    });
    await this.emitEvent(
      op,
      'Normal',
      'Drained',
      first
        ? `No pod of ${op.fromVersion} is left; running the downgrade in a runner pod`
        : `No pod of ${op.fromVersion} is left; releasing the held rollout`,
    );
    return { event: first ? 'quiesced' : 'drained', op };
  }

  /** Every DB-touching workload of the release at 0, its CronJobs suspended; what to restore recorded. */
  private async scaleReleaseDown(op: OperationState): Promise<void> {
    // All at once: every sequential round trip here keeps old pods running on the new schema longer.
    await Promise.all(
      this.releaseWorkloads(op.namespace, op.release).map(async (w) => {
        if (w.role !== 'metadata-db') return;
        if (w.kind === 'Deployment' || w.kind === 'StatefulSet') {
          if (w.replicas > 0 || w.drained?.operation !== op.id) await this.scaleToZero(op, w);
        } else if (w.kind === 'CronJob' && w.drained?.operation !== op.id) {
          await this.suspendCronJob(op, w);
        }
      }),
    );
  }

  private async scaleToZero(op: OperationState, w: WorkloadRecord): Promise<void> {
    const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
    if (!obj) return;
    const replicas = valueAt(obj, ['spec', 'replicas']);
    const unheld = unheldValue(obj, ['spec', 'replicas']);
    const current = typeof unheld === 'number' ? unheld : 1;
    const earlier = readDrainedRecord(obj);
    // Drained by this operation already (the cache had not shown it yet): nothing to write.
    if (earlier?.operation === op.id && replicas === 0) return;
    const record = earlier?.operation === op.id ? earlier : { operation: op.id, replicas: current };
    const ops: JsonPatchOp[] = [
      ...annotationOps(obj, DRAINED_ANNOTATION, JSON.stringify(record)),
      { op: replicas === undefined ? 'add' : 'replace', path: '/spec/replicas', value: 0 },
    ];
    await this.deps.cluster.patchUnchanged(w.kind, obj, ops);
    this.deps.logger.info(
      { operationId: op.id, workload: `${w.kind.toLowerCase()}/${w.name}`, replicas: current },
      'drained to 0 replicas',
    );
    await this.emitEventOn(
      op,
      w.kind,
      w.name,
      'Normal',
      'Draining',
      op.returnOf
        ? `Scaled to 0 (was ${record.replicas}) so no ${op.toVersion} pod runs against the ${op.fromVersion} schema; restored once it is there`
        : `Scaled to 0 (was ${record.replicas}) so no ${op.fromVersion} pod runs against the ${op.toVersion} schema; restored on release`,
    );
  }

  private async suspendCronJob(op: OperationState, w: WorkloadRecord): Promise<void> {
    const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
    if (!obj) return;
    // Suspended by this operation already (the cache had not shown it yet): its record holds the
    // value to restore; recording again would record our own suspend and keep the CronJob suspended.
    if (readDrainedRecord(obj)?.operation === op.id) return;
    const suspend = unheldValue(obj, ['spec', 'suspend']) === true;
    const ops: JsonPatchOp[] = [
      ...annotationOps(obj, DRAINED_ANNOTATION, JSON.stringify({ operation: op.id, suspend })),
      { op: 'add', path: '/spec/suspend', value: true },
    ];
    await this.deps.cluster.patchUnchanged(w.kind, obj, ops);
    await this.emitEventOn(
      op,
      w.kind,
      w.name,
      'Normal',
      'Suspended',
      `Suspended during the downgrade to ${op.toVersion}; restored on release`,
    );
  }

  /**
   * Pods that outlive the drain timeout are deleted; past twice the timeout, force-deleted, and the
   * drain counts as stalled. The clock starts at the record's drainStartedAt (it survives a failover).
   */
  private async pressStragglers(op: OperationState, blocking: PodRecord[], onto = op.toVersion): Promise<StepResult> {
    const waited = Date.now() - Date.parse(op.drainStartedAt ?? new Date().toISOString());
    if (waited < this.options.drainTimeoutMs) return { wait: true, op, on: 'watch' };
    const force = waited >= 2 * this.options.drainTimeoutMs;
    for (const pod of blocking) {
      if (pod.terminating && !force) continue;
      await this.deps.cluster.delete('Pod', pod.namespace, pod.name, force ? 0 : undefined);
      this.report({
        operation: op,
        step: 'drain',
        event: 'end',
        outcome: 'waiting',
        detail: `${force ? 'force-' : ''}deleted pod ${pod.name} still running ${pod.version ?? 'an unknown version'} after ${Math.round(waited / 1000)} s`,
      });
      await this.emitEvent(
        op,
        'Warning',
        'DrainTimeout',
        `Pod ${pod.name} was still running after ${Math.round(waited / 1000)} s; ${force ? 'force-' : ''}deleted it`,
      );
    }
    const names = blocking
      .map((p) => p.name)
      .sort()
      .join(', ');
    return this.stall(
      op,
      `drain: ${blocking.length} pod(s) of the release still run a version other than ${onto} after ${Math.round(waited / 1000)} s (${names})`,
      'watch',
    );
  }

  /** Step 6: give the held spec back its replicas and let it roll out. */
  private async release(op: OperationState): Promise<StepResult> {
    const mine = this.releaseWorkloads(op.namespace, op.release);
    const returned = mine.filter((w) => returnedFrom(op, w));
    if (returned.length > 0) {
      // Part of the release was changed back to the from-version (a rollback being applied): releasing
      // the rest onto the target would leave no single schema every workload matches.
      const names = returned
        .map((w) => `${w.kind.toLowerCase()}/${w.name}`)
        .sort()
        .join(', ');
      return this.stall(
        op,
        `${names} changed back to ${op.fromVersion} while the rest is held for ${op.toVersion}: waiting for every workload to be on one of them`,
      );
    }
    const waiting: string[] = [];
    // All at once: the outage lasts until the last workload is released.
    await Promise.all(
      mine.map(async (w) => {
        if (!belongsTo(op, w) && w.drained?.operation !== op.id) return;
        const restored = await this.restoreWorkload(op, w, op.toRevision);
        if (!restored) waiting.push(`${w.kind.toLowerCase()}/${w.name}`);
      }),
    );
    waiting.sort();
    const detail = waiting.length
      ? `released; still on ${op.fromVersion} and kept at 0 until their own update arrives: ${waiting.join(', ')}`
      : 'released every held workload';
    this.report({ operation: op, step: 'release', event: 'end', outcome: 'ok', detail });
    await this.emitEvent(
      op,
      'Normal',
      'Released',
      `Schema at ${op.toVersion}; rollout released. ${waiting.length ? `Waiting for updates of ${waiting.join(', ')}` : ''}`.trim(),
    );
    return { event: 'released', op };
  }

  /**
   * Restores one workload whose spec is on `head` (the target on release, the from-version on a
   * return): its hold undone, its drained replicas or suspend given back, its returned marker
   * removed. False when it must keep waiting.
   */
  private async restoreWorkload(op: OperationState, w: WorkloadRecord, head: string): Promise<boolean> {
    const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
    if (!obj) return true;
    const current = projectWorkload(w.kind, obj, this.options.config, this.resolver.lookup);
    const onHead = current?.head === head;
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
    if (ops.length === 0) return true;
    await this.deps.cluster.patchUnchanged(w.kind, obj, dedupePaths(ops));
    const onto = head === op.toRevision ? `the ${op.toVersion} schema` : `the ${op.fromVersion} schema again`;
    await this.emitEventOn(
      op,
      w.kind,
      w.name,
      'Normal',
      'Released',
      `Released onto ${onto}${drained?.replicas !== undefined ? ` with ${drained.replicas} replicas` : ''}`,
    );
    return true;
  }

  /** After the operation: a workload drained on the old version comes back once its update arrives. */
  private async restoreLateWorkloads(op: OperationState): Promise<void> {
    for (const w of this.releaseWorkloads(op.namespace, op.release)) {
      if (w.head !== op.toRevision) continue;
      if (w.drained?.operation === op.id || belongsTo(op, w)) await this.restoreWorkload(op, w, op.toRevision);
    }
  }

  // ---- the return to the from-version ------------------------------------------------------

  /**
   * The release was changed back to the from-version after the schema may have moved: wait for any
   * migration still running, then migrate forward to the from-version's head in a pod of that version
   * (a runner pod when none runs). `helm rollback` runs no hooks: nobody else would.
   */
  private async forward(op: OperationState): Promise<StepResult> {
    if (this.backingOff(op)) return { wait: true, op };
    if (await this.migrationRunning(op)) {
      return this.stall(
        op,
        'a migration holds the database lock (the downgrade may still run in its pod); waiting for it before moving the schema forward',
      );
    }
    const revision = await this.readRevision(op);
    if (revision === op.fromRevision) {
      await this.deleteRunner(op);
      const drained = this.releaseWorkloads(op.namespace, op.release).some((w) => w.drained?.operation === op.id);
      this.report({
        operation: op,
        step: 'forward',
        event: 'end',
        outcome: 'ok',
        detail: `schema at ${op.fromRevision} (${op.fromVersion})${drained ? '; restoring the drained workloads' : '; the downgrade never ran'}`,
      });
      // A return after `done` still has its holds to release.
      if (drained || op.returnOf) return { event: 'migrated', op };
      await this.clearReturnedMarkers(op);
      return { event: 'untouched', op };
    }
    if (revision !== op.toRevision && !isBetween(revision, op.toRevision, op.fromRevision)) {
      return failed(
        op,
        `returning to ${op.fromVersion}: the metadata database is at revision ${revision ?? '(none)'}, neither ${op.fromRevision} nor on the way to ${op.toRevision}; nothing was changed`,
      );
    }
    const draining = await this.drainForReturn(op);
    if (draining) return draining;
    const pod = await this.execPod(op);
    if (!pod)
      return this.stall(
        op,
        `returning to ${op.fromVersion}: waiting for a pod of ${op.fromVersion} to run "${formatArgv(migrateArgv(op.fromRevision))}" in`,
        'watch',
      );
    const withPod: OperationState = { ...op, execPod: pod };
    const outcome = await this.runInPod(withPod, 'forward', migrateArgv(op.fromRevision));
    const after = await this.readRevision(withPod);
    if (after === op.fromRevision) {
      await this.deleteRunner(withPod);
      return { event: 'migrated', op: withPod };
    }
    if (outcome.notStarted && op.attempts + 1 < this.options.confirmAttempts) {
      this.backOff(op, op.attempts + 1);
      return { wait: true, op: { ...withPod, attempts: op.attempts + 1 } };
    }
    await this.deleteRunner(withPod);
    return failed(
      withPod,
      `returning to ${op.fromVersion}: "${formatArgv(migrateArgv(op.fromRevision))}" in pod ${pod.name} failed (${outcome.error ?? `exit code ${outcome.exitCode}`}); schema at ${after ?? '(none)'}; OPERATOR ACTION NEEDED: the release stays drained`,
    );
  }

  /**
   * A return after `done`, in either order: the target's pods still serve, and they cannot run on
   * the from-version's newer schema; drain them before the schema moves forward (restore gives the
   * replicas back). Undefined once none is left.
   */
  private async drainForReturn(op: OperationState): Promise<StepResult | undefined> {
    if (!op.returnOf) return undefined;
    await this.scaleReleaseDown(op);
    const blocking = podsBlockingRelease(
      this.pods.group(releaseKey(op.namespace, op.release)),
      op.release,
      op.namespace,
      op.fromRevision,
    );
    if (blocking.length === 0) return undefined;
    const started: OperationState = op.drainStartedAt ? op : { ...op, drainStartedAt: new Date().toISOString() };
    return this.pressStragglers(started, blocking, op.fromVersion);
  }

  private async clearReturnedMarkers(op: OperationState): Promise<void> {
    for (const w of this.releaseWorkloads(op.namespace, op.release)) {
      if (!returnedFrom(op, w)) continue;
      const obj = await this.deps.cluster.find(w.kind, w.namespace, w.name);
      const patch = obj ? clearReturnedPatch(obj) : [];
      if (patch.length > 0) await this.deps.cluster.patchUnchanged(w.kind, obj, patch);
    }
  }

  // ---- stalls ------------------------------------------------------------------------------

  /**
   * Waits on something that may never come. Shown at once (Warning Event on the held workloads,
   * `stalled` in the record, the stall hook for the metric); after stallTimeoutMs the operation is held.
   */
  private async stall(op: OperationState, reason: string, on?: 'watch'): Promise<StepResult> {
    const outcome = stallOutcome(op, reason, Date.now(), this.options.stallTimeoutMs);
    if (outcome.kind === 'held') return { event: 'stalled', op: outcome.op };
    if (outcome.kind === 'unchanged') return { wait: true, op, ...(on ? { on } : {}) };
    const stalled = outcome.op;
    this.deps.logger.warn({ operationId: op.id, phase: op.phase, reason }, 'operation stalled');
    this.report({ operation: stalled, step: 'stall', event: 'end', outcome: 'waiting', detail: reason });
    this.deps.hooks?.onStall?.(stalled, reason);
    await this.emitEvent(
      stalled,
      'Warning',
      'DowngradeStalled',
      `Waiting in ${op.phase}: ${reason}. Held after ${Math.round(this.options.stallTimeoutMs / 1000)} s`,
    );
    // The new stall is written now (the wait result carries it); what it waits on is polled every pollMs.
    return { wait: true, op: stalled };
  }

  // ---- persistence, leases, events, reports ------------------------------------------------

  private async save(op: OperationState, resourceVersion: string): Promise<string> {
    const updated = { ...op, updatedAt: new Date().toISOString() };
    const key = `${op.namespace}/${op.release}`;
    let saved: unknown;
    try {
      saved = await this.deps.cluster.replace(
        'ConfigMap',
        op.namespace,
        operationConfigMapName(op.release),
        operationConfigMap(updated, resourceVersion),
      );
    } catch (error) {
      // A conflict, or a write that may or may not have landed: the next reconcile reads the cluster.
      this.known.delete(key);
      this.readNext.add(key);
      throw error;
    }
    const rv = String(valueAt(saved, ['metadata', 'resourceVersion']) ?? '');
    this.known.set(key, { op: updated, resourceVersion: rv });
    return rv;
  }

  /** The one place a phase changes: `event` through the transition table, with the step that led there. */
  private async saveStep(
    op: OperationState,
    resourceVersion: string,
    step: StepName,
    outcome: StepRecord['outcome'],
    durationMs: number,
    detail: string | undefined,
    event: OperationEvent,
    before: StepRecord[] = [],
  ): Promise<{ op: OperationState; resourceVersion: string } | undefined> {
    const next = nextPhase(op.phase, event, op.heldFrom);
    const now = new Date().toISOString();
    const record: StepRecord = {
      step,
      outcome,
      at: now,
      durationMs,
      ...(detail ? { detail: detail.slice(0, 2000) } : {}),
    };
    // A wait ends with its phase; the drain clock with the drain.
    const { stalled, drainStartedAt, ...rest } = op;
    const carried: OperationState = {
      ...rest,
      ...(next === op.phase && drainStartedAt ? { drainStartedAt } : {}),
      ...(next === 'held' && stalled ? { stalled } : {}),
    };
    const updated = [...before, record].reduce((acc, r) => withStep(acc, r), {
      ...carried,
      phase: next,
      updatedAt: now,
    });
    try {
      const rv = await this.save(updated, resourceVersion);
      if (stalled && next !== 'held') this.deps.hooks?.onStall?.(updated, undefined);
      this.deps.hooks?.onPhase?.(updated);
      if (next === 'held') {
        this.report({
          operation: updated,
          step: 'hold',
          event: 'end',
          outcome: 'held',
          detail: updated.heldReason ?? '',
        });
        await this.emitEvent(
          updated,
          'Warning',
          'DowngradeHeld',
          `Release held on ${op.fromVersion}: ${updated.heldReason ?? ''}`,
        );
      }
      if (next === 'cancelled') await this.emitEvent(updated, 'Normal', 'DowngradeCancelled', detail ?? 'cancelled');
      if (next === 'forward')
        await this.emitEvent(
          updated,
          'Warning',
          'DowngradeReturned',
          `Release changed back to ${op.fromVersion} during the downgrade (at ${op.phase === 'held' ? `held, ${op.heldFrom ?? 'confirm'}` : op.phase}): the guard moves the schema forward to ${op.fromRevision} and restores the drained workloads`,
        );
      if (next === 'returned') {
        const undone = op.returnOf
          ? `The downgrade to ${op.toVersion} (operation ${op.returnOf}) is undone`
          : `The downgrade to ${op.toVersion} did not happen`;
        await this.emitEvent(
          updated,
          'Warning',
          'ReturnedToFromVersion',
          `Release back at ${op.fromVersion} with the schema at ${op.fromRevision}; drained workloads restored. ${undone}`,
        );
      }
      return { op: updated, resourceVersion: rv };
    } catch (error) {
      if (isConflict(error)) return undefined;
      throw error;
    }
  }

  /** Held in memory while fresh: a round trip only to acquire, or to renew at a third of the duration. */
  private acquireLease(namespace: string, release: string): Promise<boolean> {
    return this.leases.acquire(namespace, release);
  }

  private report(report: StepReport): void {
    const { operation, ...rest } = report;
    this.deps.logger.info(
      { operationId: operation.id, namespace: operation.namespace, release: operation.release, ...rest },
      `operation ${rest.step} ${rest.event}${rest.outcome ? ` ${rest.outcome}` : ''}`,
    );
    try {
      this.deps.hooks?.onStep?.(report);
    } catch (error) {
      this.deps.logger.error({ err: (error as Error).message }, 'step hook failed');
    }
  }

  /** An Event on every workload of the release that the operation holds or drained. */
  private async emitEvent(
    op: OperationState,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const targets = this.releaseWorkloads(op.namespace, op.release).filter(
      (w) => w.holdOperation === op.id || w.drained?.operation === op.id,
    );
    const [kind, name] = op.openedBy.split('/') as [WorkloadKind, string];
    if (!targets.some((t) => t.kind === kind && t.name === name)) targets.push({ kind, name } as WorkloadRecord);
    await Promise.all(targets.map((t) => this.emitEventOn(op, t.kind, t.name, type, reason, message)));
  }

  private async emitEventOn(
    op: Pick<OperationState, 'namespace'>,
    kind: WorkloadKind,
    name: string,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const now = new Date().toISOString();
    const apiVersion = apiVersionOf(kind);
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${name.slice(0, 200)}.`, namespace: op.namespace },
      involvedObject: { apiVersion, kind, name, namespace: op.namespace },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: 'airflow-downgrade-guard' },
      reportingComponent: 'airflow-downgrade-guard',
      reportingInstance: this.options.identity,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    // Queued, not awaited: a step never waits for its Events (the recorder logs any it cannot write).
    this.events.record(op.namespace, event);
  }
}

function phaseStep(phase: Phase): StepName {
  switch (phase) {
    case 'confirm':
    case 'downgrade':
    case 'verify':
    case 'drain':
    case 'release':
    case 'forward':
    case 'restore':
    case 'quiesce':
      return phase;
    default:
      return 'hold';
  }
}

/** A revision strictly between two heads of the chain (a downgrade that stopped halfway). */
function summariseOperation(obj: unknown): OperationSummary | undefined {
  try {
    const read = readOperationConfigMap(obj);
    if (!read) return undefined;
    const { op, resourceVersion } = read;
    return {
      namespace: op.namespace,
      release: op.release,
      id: op.id,
      phase: op.phase,
      fromVersion: op.fromVersion,
      toVersion: op.toVersion,
      ...(op.returnOf ? { returnOf: op.returnOf } : {}),
      resourceVersion,
    };
  } catch {
    return undefined;
  }
}

/**
 * Whether resourceVersion `a` is newer than `b`. Opaque to clients in general; integers in practice
 * (etcd revisions), compared as such. Anything else that differs counts as newer: read it.
 */
function isNewerVersion(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

function annotationOps(obj: unknown, key: string, value: string): JsonPatchOp[] {
  const annotations = valueAt(obj, ['metadata', 'annotations']);
  if (!isJsonObject(annotations)) return [{ op: 'add', path: '/metadata/annotations', value: { [key]: value } }];
  return [{ op: 'add', path: pointer(['metadata', 'annotations', key]), value }];
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

function mainContainerName(template: Record<string, unknown>, component: string): string | undefined {
  const containers = valueAt(template, ['spec', 'containers']);
  if (!Array.isArray(containers)) return undefined;
  const names = containers.flatMap((c) => (isJsonObject(c) && typeof c.name === 'string' ? [c.name] : []));
  return names.find((n) => n === component) ?? names[0];
}

/** The newer version's pod spec, reduced to its main container idling so we can exec into it. */
function runnerPodSpec(template: Record<string, unknown>, container: string): Record<string, unknown> {
  const spec = structuredClone(valueAt(template, ['spec']) as Record<string, unknown>);
  const containers = (spec.containers as Array<Record<string, unknown>>).filter((c) => c.name === container);
  for (const c of containers) {
    c.command = ['sleep', 'infinity'];
    delete c.args;
    delete c.readinessProbe;
    delete c.livenessProbe;
    delete c.startupProbe;
    delete c.ports;
  }
  spec.containers = containers;
  delete spec.initContainers;
  spec.restartPolicy = 'Never';
  delete spec.nodeName;
  return spec;
}
