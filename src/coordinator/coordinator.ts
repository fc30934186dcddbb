// The drain coordinator: for each release with a held rollout, one resumable operation
//   confirm -> downgrade (exec in a pod of the newer version) -> verify -> drain -> release
// driven by whichever replica holds the release's Lease. Every step is idempotent and its state is
// written back to the operation's ConfigMap before the next one starts, so a restarted or other
// replica resumes where the last one stopped.
import { readHoldTarget } from '../core/hold.js';
import { ANNOTATIONS } from '../core/config.js';
import { annotationsOf, valueAt, type WorkloadKind } from '../core/objects.js';
import type { ReleaseState } from '../core/decide.js';
import { releaseKey } from '../core/release.js';
import { isConflict, resourcePath } from '../k8s/cluster.js';
import { WatchCache } from '../k8s/watch-cache.js';
import { EventQueue } from './event-queue.js';
import { ExecPods } from './exec-pods.js';
import { LeaseKeeper } from './lease.js';
import {
  belongsTo,
  freshOperationId,
  leftBehind,
  returnEvent,
  returnedFrom,
  returnsAfterDone,
  stallOutcome,
} from './membership.js';
import { ImageHeads } from './image-heads.js';
import { MetadataDatabase } from './metadata-db.js';
import { MetadataUrls } from './metadata-url.js';
import { ResolutionCache } from '../core/resolution-cache.js';
import { ImageResolver } from './image-resolver.js';
import { resolvedStep, resolveHeldWorkloads } from './resolution.js';
import type { CoordinatorDeps, CoordinatorOptions } from './options.js';
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
  type Phase,
  type StepName,
  type StepRecord,
} from './operation.js';
import {
  podsBlockingRelease,
  projectPod,
  projectWorkload,
  releaseKeyOf,
  ReleaseStateCache,
  type PodRecord,
  type WorkloadRecord,
} from './release-view.js';
import { Semaphore } from './semaphore.js';
import type { StepContext, StepReport, StepResult } from './steps/context.js';
import { STEPS } from './steps/index.js';
import { rollForward } from './steps/roll-forward.js';
import { nextPhase, type OperationEvent } from './transitions.js';
import { WorkloadGateway } from './workloads.js';

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

/** How long stop() waits for queued Events. */
const EVENT_FLUSH_MS = 2_000;

const WORKLOAD_KINDS: WorkloadKind[] = ['Deployment', 'StatefulSet', 'Job', 'CronJob'];

export class Coordinator {
  readonly workloads = new Map<WorkloadKind, WatchCache<WorkloadRecord>>();
  pods!: WatchCache<PodRecord>;
  operations!: WatchCache<OperationSummary>;
  private readonly queue = new Map<string, { running: boolean; again: boolean }>();
  /** Per operation: no new attempt of a step failing on something outside us before this time. */
  private readonly retryAt = new Map<string, number>();
  private resyncTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly events: EventQueue;
  private readonly leases: LeaseKeeper;
  private readonly database: MetadataDatabase;
  private readonly imageHeads: ImageHeads;
  /** Versions of images whose tag names none: the resolution cache admission reads, and how they are resolved. */
  readonly resolver: ImageResolver;
  private readonly workloadGateway: WorkloadGateway;
  private readonly execPods: ExecPods;
  /** Per release: the operation state last written or read here, used while the watch cache has seen nothing newer. */
  private readonly known = new Map<string, { op: OperationState; resourceVersion: string }>();
  /** Releases whose state must be read from the API on the next reconcile (a create lost a race). */
  private readonly readNext = new Set<string>();
  /** What the step modules (steps/) may use of this coordinator. */
  private readonly stepContext: StepContext;
  /** Admission's view of each release, recomputed only when the release's cached records change. */
  private readonly releaseStates = new ReleaseStateCache(() => ({
    workloads: this.workloads.values(),
    pods: this.pods,
  }));

  constructor(
    private readonly options: CoordinatorOptions,
    private readonly deps: CoordinatorDeps,
  ) {
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
    this.imageHeads = new ImageHeads(deps.exec, deps.logger);
    this.resolver = new ImageResolver({
      cluster: deps.cluster,
      exec: deps.exec,
      logger: deps.logger,
      cache: new ResolutionCache(options.imageResolution?.tagTtlMs),
      registry: options.imageResolution?.registry ?? {},
      probeTimeoutMs: options.imageResolution?.probeTimeoutMs ?? 120_000,
    });
    const urls = new MetadataUrls(options, {
      find: (kind, namespace, name) => deps.cluster.find(kind, namespace, name),
      exec: deps.exec,
      logger: deps.logger,
    });
    this.database = new MetadataDatabase({
      urls: {
        url: (op) =>
          urls.url(
            op,
            this.releaseWorkloads(op.namespace, op.release),
            this.pods.group(releaseKey(op.namespace, op.release)),
          ),
        forget: (op) => urls.forget(op),
      },
      ...(deps.readRevision ? { readRevision: deps.readRevision } : {}),
      ...(deps.migrationRunning ? { migrationRunning: deps.migrationRunning } : {}),
      onRevision: (namespace, release) => deps.hooks?.onReleaseChange?.(namespace, release),
    });
    const releaseWorkloads = (namespace: string, release: string): WorkloadRecord[] =>
      this.releaseWorkloads(namespace, release);
    this.workloadGateway = new WorkloadGateway({
      cluster: deps.cluster,
      config: options.config,
      versionLookup: this.resolver.lookup,
      events: this.events,
      identity: options.identity,
      logger: deps.logger,
      releaseWorkloads,
    });
    this.execPods = new ExecPods({
      cluster: deps.cluster,
      config: options.config,
      versionLookup: this.resolver.lookup,
      exec: deps.exec,
      execSlots: new Semaphore(options.maxConcurrentExecs),
      execTimeoutMs: options.execTimeoutMs,
      logger: deps.logger,
      pods: () => this.pods,
      workloads: this.workloadGateway,
      releaseWorkloads,
      report: (report) => this.report(report),
    });
    const ctx: StepContext = {
      readRevision: (op) => this.database.revision(op),
      migrationRunning: (op) => this.database.migrationRunning(op),
      report: (report) => this.report(report),
      emitEvent: async (op, type, reason, message) => this.workloadGateway.event(op, type, reason, message),
      stall: (op, reason, on) => this.stall(op, reason, on),
      backingOff: (op) => this.backingOff(op),
      backOff: (op, attempts) => this.backOff(op, attempts),
      rollForward: (op, at, why, failedStep) => rollForward(ctx, op, at, why, failedStep),
      releaseWorkloads: (op) => this.releaseWorkloads(op.namespace, op.release),
      restoreWorkload: (op, w, head) => this.workloadGateway.restore(op, w, head),
      scaleToZero: (op, w) => this.workloadGateway.scaleToZero(op, w),
      suspendCronJob: (op, w) => this.workloadGateway.suspendCronJob(op, w),
      clearReturnedMarkers: (op) => this.workloadGateway.clearReturnedMarkers(op),
      execPod: (op) => this.execPods.choose(op),
      exec: (op, step, argv) => this.execPods.run(op, step, argv),
      deleteRunner: (op) => this.execPods.deleteRunner(op),
      podsBlocking: (op, head) =>
        podsBlockingRelease(this.pods.group(releaseKey(op.namespace, op.release)), op.release, op.namespace, head),
      releasePods: (op) => [...this.pods.group(releaseKey(op.namespace, op.release))],
      deletePod: (pod, force) => deps.cluster.delete('Pod', pod.namespace, pod.name, force ? 0 : undefined),
      now: () => Date.now(),
      confirmAttempts: options.confirmAttempts,
      drainTimeoutMs: options.drainTimeoutMs,
      rolloutSettleMs: options.rolloutSettleMs,
    };
    this.stepContext = ctx;
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
    await this.database.close();
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
    const state = this.releaseStates.get(namespace, release, operation, this.database.lastRevision(namespace, release));
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
            // A write refused because its object changed since it was read is a race, not a fault:
            // the watch event of that change brings the release back.
            if (isConflict(error)) {
              this.deps.logger.debug(
                { namespace, release, err: (error as Error).message },
                'an object changed while it was acted on; looking again',
              );
              return;
            }
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
        if (op.phase === 'done' && (lateMembersOk ??= (await this.database.revision(op)) === op.toRevision)) continue;
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
      if (workloads.some((w) => returnedFrom(op!, w))) await this.workloadGateway.clearReturnedMarkers(op);
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
        readRevision: (ns, name) => this.database.revision({ namespace: ns, release: name }),
        readHeadsMap: async (ns, name) => {
          const read = await this.imageHeads.ofNewestPod(this.pods.group(releaseKey(ns, name)), {
            namespace: ns,
            release: name,
          });
          if (read) this.deps.logger.info({ namespace: ns, release: name }, read.detail);
          return read;
        },
        emitEvent: (ns, kind, name, type, reason, message) =>
          this.workloadGateway.eventOn({ namespace: ns }, { kind, name }, type, reason, message),
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
    const workloads = this.releaseWorkloads(op.namespace, op.release);
    const event = returnEvent(op, workloads, this.cachesReady());
    if (!event) return { op, resourceVersion };
    for (const w of workloads)
      if (leftBehind(op, w) && !(await this.workloadGateway.deleteLeftBehindJob(op, w))) return undefined;
    if (event === 'reverted') await this.workloadGateway.clearReturnedMarkers(op);
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
      if (!(await this.workloadGateway.joinHold(op, w))) continue;
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
    const read = await this.workloadGateway.read(w);
    if (!read) return undefined;
    const target = readHoldTarget(read.obj);
    if (!target) {
      this.deps.logger.warn(
        { namespace: w.namespace, workload: `${w.kind}/${w.name}` },
        'held workload lacks operation annotations; not opening',
      );
      return undefined;
    }
    const { operationId: admittedAs, fromVersion, toVersion } = target;
    const resolved = await this.imageHeads.forOpening(target, this.pods.group(releaseKey(w.namespace, w.release)), w);
    if ('wait' in resolved) {
      // The resync brings the held workload back; a pod of the from-version becoming Ready ends the wait.
      this.deps.logger.info({ namespace: w.namespace, release: w.release }, resolved.wait);
      return undefined;
    }
    const { fromRevision, toRevision } = 'heads' in resolved ? resolved : target;
    const problem =
      'problem' in resolved
        ? resolved.problem
        : openingProblem({ fromVersion, toVersion, fromRevision: fromRevision ?? '', toRevision }, resolved.heads);
    if (problem || fromRevision === undefined) {
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
      const resolved = annotationsOf(read.obj)[ANNOTATIONS.resolved];
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
        detail: `opened by ${op.openedBy}: ${fromVersion} -> ${toVersion}${after}${'detail' in resolved && resolved.detail ? `; ${resolved.detail}` : ''}`,
      });
      if (op.returnOf) {
        this.workloadGateway.event(
          op,
          'Warning',
          'ReturnAfterDowngrade',
          `Release changed back to ${fromVersion} after downgrade ${op.returnOf} finished; no migration Job comes with a rollback, so operation ${op.id} moves the schema forward ${toRevision} -> ${fromRevision}; rollout held until it matches`,
        );
      } else {
        this.workloadGateway.event(
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

  private runPhase(op: OperationState): Promise<StepResult> {
    const step = STEPS[op.phase];
    return step ? step(this.stepContext, op) : Promise.resolve({ wait: true, op });
  }

  private backingOff(op: OperationState): boolean {
    return Date.now() < (this.retryAt.get(op.id) ?? 0);
  }

  /** Exponential backoff from pollMs, capped at 5 s: our own ConfigMap write must not trigger the next attempt at once. */
  private backOff(op: OperationState, attempts: number): void {
    this.retryAt.set(op.id, Date.now() + Math.min(this.options.pollMs * 2 ** Math.min(attempts, 10), 5000));
  }

  /** After the operation: a workload drained on the old version comes back once its update arrives. */
  private async restoreLateWorkloads(op: OperationState): Promise<void> {
    for (const w of this.releaseWorkloads(op.namespace, op.release)) {
      if (w.head !== op.toRevision) continue;
      if (w.drained?.operation === op.id || belongsTo(op, w)) await this.workloadGateway.restore(op, w, op.toRevision);
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
    this.workloadGateway.event(
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
        this.workloadGateway.event(
          updated,
          'Warning',
          'DowngradeHeld',
          `Release held on ${op.fromVersion}: ${updated.heldReason ?? ''}`,
        );
      }
      if (next === 'cancelled')
        this.workloadGateway.event(updated, 'Normal', 'DowngradeCancelled', detail ?? 'cancelled');
      if (next === 'forward')
        this.workloadGateway.event(
          updated,
          'Warning',
          'DowngradeReturned',
          `Release changed back to ${op.fromVersion} during the downgrade (at ${op.phase === 'held' ? `held, ${op.heldFrom ?? 'confirm'}` : op.phase}): the guard moves the schema forward to ${op.fromRevision} and restores the drained workloads`,
        );
      if (next === 'returned') {
        const undone = op.returnOf
          ? `The downgrade to ${op.toVersion} (operation ${op.returnOf}) is undone`
          : `The downgrade to ${op.toVersion} did not happen`;
        this.workloadGateway.event(
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
