// The simulated node: schedules pods onto `node-1`, runs init containers one by one and then the
// main containers through the ContainerRuntime, reports readiness, restarts per restartPolicy,
// and carries out graceful deletion (stop the containers, remove the pod when they stopped or the
// grace period ran out).
import { RESOURCES } from '../resources.js';
import type { Store } from '../store.js';
import { StoreError } from '../store.js';
import type { ContainerProcess, ContainerRuntime, KubeObject, WatchEvent } from '../types.js';
import {
  asArray,
  asInt,
  asRecord,
  asString,
  conditionsOf,
  errorMessage,
  isTerminal,
  rfc3339,
  sha256Hex,
  specOf,
  terminationGraceSeconds,
  updateWithRetry,
  type Json,
  type Logger,
} from './common.js';
import type { EventRecorder } from './events.js';

export interface KubeletOptions {
  nodeName: string;
  /** Time from scheduling to the first container start (sandbox + image pull). */
  podStartDelayMs: number;
  /** A started main container reports ready no earlier than this. */
  readyDelayMs: number;
  /** How often readiness is re-read from the processes. */
  probeIntervalMs: number;
  /** First restart delay of a crashing container; doubles per restart up to 30x. */
  crashLoopBackoffMs: number;
  defaultGraceSeconds: number;
  /** Milliseconds per second of grace period (tests shrink it). */
  graceUnitMs: number;
  /** Pods for which this returns true are never finished off by the kubelet (status frozen, not removed). */
  stuckTerminating?: (pod: KubeObject) => boolean;
}

export interface RunningProcess {
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  role: 'init' | 'main';
  startedAt: string;
  process: ContainerProcess;
}

interface ExitResult {
  exitCode: number;
  reason?: string;
}

interface Terminated {
  exitCode: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
  containerID: string;
}

interface Slot {
  name: string;
  role: 'init' | 'main';
  spec: Json & { name: string };
  process?: ContainerProcess;
  exit?: ExitResult;
  run: number;
  startedAtMs: number;
  startedAt: string;
  containerID: string;
  state: 'waiting' | 'running' | 'terminated';
  waiting: { reason: string; message?: string };
  terminated?: Terminated;
  lastTerminated?: Terminated;
  restartCount: number;
  ready: boolean;
}

const HOST_IP = '192.168.49.2';

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  private ipCounter = 0;
  private stopped = false;

  constructor(
    readonly store: Store,
    readonly runtime: ContainerRuntime,
    readonly events: EventRecorder,
    readonly log: Logger,
    readonly options: KubeletOptions,
  ) {}

  /** Store watch callback: handled after the write that caused it, never inside it. */
  onPodEvent(event: WatchEvent): void {
    queueMicrotask(() => {
      if (this.stopped) return;
      try {
        this.handle(event);
      } catch (err) {
        this.log.warn(
          { pod: event.object?.metadata?.name, err: errorMessage(err) },
          'kubelet could not handle a pod event',
        );
      }
    });
  }

  private handle(event: WatchEvent): void {
    const pod = event.object;
    const uid = pod.metadata?.uid;
    if (!uid) return;
    if (event.type === 'DELETED') {
      void this.workers.get(uid)?.abort(); // abort() never rejects
      this.workers.delete(uid);
      return;
    }
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
    this.observe(pod);
  }

  /** Catches up with pods whose events were missed, and re-checks stuck or finalizer-held deletions. */
  resync(): void {
    if (this.stopped) return;
    const pods = this.store.list(RESOURCES.pods).items;
    const live = new Set(pods.map((p) => p.metadata.uid));
    for (const [uid, worker] of this.workers) {
      if (!live.has(uid)) {
        void worker.abort(); // abort() never rejects
        this.workers.delete(uid);
      }
    }
    for (const pod of pods) this.observe(pod);
  }

  runningProcesses(): RunningProcess[] {
    return [...this.workers.values()].flatMap((w) => w.running());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.abort()));
  }

  forget(uid: string): void {
    this.workers.delete(uid);
  }

  allocateIP(): string {
    const n = this.ipCounter++;
    return `10.244.${Math.floor(n / 254) % 256}.${(n % 254) + 1}`;
  }

  private observe(pod: KubeObject): void {
    const uid = pod.metadata.uid ?? '';
    let worker = this.workers.get(uid);
    if (!worker) {
      const invalid = invalidPodSpec(pod);
      if (invalid) {
        this.log.warn(
          { pod: `${pod.metadata.namespace}/${pod.metadata.name}`, error: invalid },
          'kubelet skips a pod it cannot run',
        );
        return;
      }
      if (isTerminal(pod) && !pod.metadata.deletionTimestamp) return;
      worker = new PodWorker(this, pod);
      this.workers.set(uid, worker);
      if (!pod.metadata.deletionTimestamp && !isTerminal(pod)) worker.start();
    }
    worker.pod = pod;
    if (pod.metadata.deletionTimestamp) worker.terminate();
  }
}

function invalidPodSpec(pod: KubeObject): string | undefined {
  const containers = asArray(specOf(pod).containers);
  if (containers.length === 0) return 'spec.containers is empty';
  const all = [...containers, ...asArray(specOf(pod).initContainers)];
  if (!all.every((c) => typeof asRecord(c)?.name === 'string')) return 'a container has no name';
  return undefined;
}

function containerID(): string {
  return `containerd://${sha256Hex(String(Math.random()) + Date.now())}`;
}

function imageID(image: string): string {
  const repo = image.replace(/@.*$/, '').replace(/:[^/:]+$/, '');
  const qualified = repo.includes('/')
    ? repo.split('/')[0]?.includes('.')
      ? repo
      : `docker.io/${repo}`
    : `docker.io/library/${repo}`;
  return `${qualified}@sha256:${sha256Hex(image)}`;
}

class PodWorker {
  pod: KubeObject;
  private readonly uid: string;
  private readonly init: Slot[];
  private readonly main: Slot[];
  private phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending';
  private initialized: boolean;
  private sandboxReady = false;
  private podIP: string | undefined;
  private startTime: string | undefined;
  private started = false;
  private terminating = false;
  private frozen = false;
  private done = false;
  private readonly controller = new AbortController();
  private readinessTimer: NodeJS.Timeout | undefined;
  private cancelGrace: () => void = () => {};

  constructor(
    private readonly kubelet: Kubelet,
    pod: KubeObject,
  ) {
    this.pod = pod;
    this.uid = pod.metadata.uid ?? '';
    const slot = (c: unknown, role: 'init' | 'main'): Slot => {
      const spec = asRecord(c) as Json & { name: string };
      return {
        name: spec.name,
        role,
        spec,
        run: 0,
        startedAtMs: 0,
        startedAt: '',
        containerID: '',
        state: 'waiting',
        waiting: { reason: 'PodInitializing' },
        restartCount: 0,
        ready: false,
      };
    };
    this.init = asArray(specOf(pod).initContainers).map((c) => slot(c, 'init'));
    this.main = asArray(specOf(pod).containers).map((c) => slot(c, 'main'));
    this.initialized = this.init.length === 0;
    if (this.initialized) for (const s of this.main) s.waiting = { reason: 'ContainerCreating' };
  }

  private get opts(): KubeletOptions {
    return this.kubelet.options;
  }

  private get halted(): boolean {
    return this.terminating || this.done;
  }

  private get restartPolicy(): string {
    return asString(specOf(this.pod).restartPolicy) ?? 'Always';
  }

  start(): void {
    this.started = true;
    this.run().catch((err) => {
      this.kubelet.log.warn({ pod: this.describe(), err: errorMessage(err) }, 'pod worker failed');
    });
  }

  running(): RunningProcess[] {
    if (this.done) return [];
    return [...this.init, ...this.main]
      .filter((s) => s.state === 'running' && s.process)
      .map((s) => ({
        namespace: this.pod.metadata.namespace ?? '',
        pod: this.pod.metadata.name,
        podUid: this.uid,
        container: s.name,
        role: s.role,
        startedAt: s.startedAt,
        process: s.process as ContainerProcess,
      }));
  }

  private describe(): string {
    return `${this.pod.metadata.namespace}/${this.pod.metadata.name}`;
  }

  private async run(): Promise<void> {
    this.schedule();
    await this.sleep(this.opts.podStartDelayMs);
    if (this.halted) return;
    this.sandboxReady = true;
    this.podIP = this.kubelet.allocateIP();
    this.writeStatus();
    for (const slot of this.init) {
      if (!(await this.runInit(slot))) return;
    }
    if (this.halted) return;
    this.initialized = true;
    for (const slot of this.main) this.startMain(slot);
    this.phase = 'Running';
    this.writeStatus();
    this.readinessTimer = setInterval(() => this.probe(), Math.max(5, this.opts.probeIntervalMs));
    this.readinessTimer.unref();
  }

  /** Binds the pod to the node (the scheduler's part) and acknowledges it (the kubelet's). */
  private schedule(): void {
    this.startTime = rfc3339();
    const nodeName = this.opts.nodeName;
    let bound = false;
    const updated = updateWithRetry(
      this.kubelet.store,
      RESOURCES.pods,
      this.pod.metadata.namespace,
      this.pod.metadata.name,
      (cur) => {
        if (cur.metadata.uid !== this.uid) return false;
        if (specOf(cur).nodeName) return false;
        cur.spec = { ...specOf(cur), nodeName };
        bound = true;
      },
    );
    if (updated) this.pod = updated;
    if (bound) {
      this.event('Normal', 'Scheduled', `Successfully assigned ${this.describe()} to ${nodeName}`, 'default-scheduler');
    }
    this.writeStatus();
  }

  /** Runs one init container until it exits 0; false when the pod failed or is going away. */
  private async runInit(slot: Slot): Promise<boolean> {
    while (!this.halted) {
      const exited = this.launch(slot);
      const result = await Promise.race([exited, this.aborted()]);
      if (this.halted || !result) return false;
      this.finish(slot, result);
      if (result.exitCode === 0) {
        slot.ready = true;
        this.writeStatus();
        return true;
      }
      if (this.restartPolicy === 'Never') {
        this.phase = 'Failed';
        this.writeStatus();
        return false;
      }
      await this.backOff(slot);
    }
    return false;
  }

  private startMain(slot: Slot): void {
    const exited = this.launch(slot);
    const run = slot.run;
    void exited.then((result) => this.onMainExit(slot, run, result));
  }

  private onMainExit(slot: Slot, run: number, result: ExitResult): void {
    if (this.halted || slot.run !== run) return;
    this.finish(slot, result);
    const policy = this.restartPolicy;
    const restart = policy === 'Always' || (policy === 'OnFailure' && result.exitCode !== 0);
    if (!restart) {
      if (this.main.every((s) => s.state === 'terminated')) {
        this.phase = this.main.every((s) => s.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
        this.stopProbing();
      }
      this.writeStatus();
      return;
    }
    void this.backOff(slot).then(() => {
      if (this.halted || slot.run !== run) return;
      this.startMain(slot);
      this.writeStatus();
    });
  }

  /** Shows the crash (Error, then CrashLoopBackOff on repeats) and waits before the restart. */
  private async backOff(slot: Slot): Promise<void> {
    const delay = Math.min(this.opts.crashLoopBackoffMs * 2 ** slot.restartCount, this.opts.crashLoopBackoffMs * 30);
    if (slot.restartCount > 0) {
      slot.lastTerminated = slot.terminated;
      slot.state = 'waiting';
      slot.waiting = {
        reason: 'CrashLoopBackOff',
        message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${slot.name} pod=${this.pod.metadata.name}_${this.pod.metadata.namespace}(${this.uid})`,
      };
      this.event(
        'Warning',
        'BackOff',
        `Back-off restarting failed container ${slot.name} in pod ${this.pod.metadata.name}_${this.pod.metadata.namespace}(${this.uid})`,
      );
    }
    this.writeStatus();
    await this.sleep(delay);
    if (this.halted) return;
    if (slot.state === 'terminated') slot.lastTerminated = slot.terminated;
    slot.restartCount++;
  }

  /** Starts a container; resolves with its exit (a failed start is an exit with code 128). */
  private launch(slot: Slot): Promise<ExitResult> {
    slot.run++;
    slot.exit = undefined;
    slot.ready = false;
    const image = asString(slot.spec.image) ?? '';
    let process: ContainerProcess;
    try {
      process = this.kubelet.runtime.start({
        namespace: this.pod.metadata.namespace ?? '',
        pod: structuredClone(this.pod),
        container: structuredClone(slot.spec),
        role: slot.role,
      });
    } catch (err) {
      this.event('Warning', 'Failed', `Error: failed to start container "${slot.name}": ${errorMessage(err)}`);
      slot.startedAt = rfc3339();
      return Promise.resolve({ exitCode: 128, reason: 'StartError' });
    }
    if (slot.restartCount === 0)
      this.event('Normal', 'Pulled', `Container image "${image}" already present on machine`);
    this.event('Normal', 'Created', `Created container: ${slot.name}`);
    this.event('Normal', 'Started', `Started container ${slot.name}`);
    slot.process = process;
    slot.state = 'running';
    slot.startedAtMs = Date.now();
    slot.startedAt = rfc3339(slot.startedAtMs);
    slot.containerID = containerID();
    this.writeStatus();
    const exited = Promise.resolve(process.exited).then(
      (r) => ({ exitCode: asInt(r?.exitCode, 1), ...(r?.reason ? { reason: r.reason } : {}) }),
      (err) => ({ exitCode: 1, reason: `Error: ${errorMessage(err)}` }),
    );
    void exited.then((r) => {
      if (slot.process === process) slot.exit = r;
    });
    return exited;
  }

  private finish(slot: Slot, result: ExitResult): void {
    slot.state = 'terminated';
    slot.ready = false;
    slot.terminated = {
      exitCode: result.exitCode,
      reason: result.exitCode === 0 ? 'Completed' : result.reason === 'StartError' ? 'StartError' : 'Error',
      ...(result.reason && result.reason !== 'StartError' ? { message: result.reason } : {}),
      startedAt: slot.startedAt || rfc3339(),
      finishedAt: rfc3339(),
      containerID: slot.containerID,
    };
  }

  private probe(): void {
    if (this.halted || this.frozen) return;
    const now = Date.now();
    let changed = false;
    for (const slot of this.main) {
      if (slot.state !== 'running' || !slot.process) continue;
      let ready = false;
      try {
        ready = now - slot.startedAtMs >= this.opts.readyDelayMs && slot.process.ready() === true;
      } catch {
        ready = false;
      }
      if (ready !== slot.ready) {
        slot.ready = ready;
        changed = true;
      }
    }
    if (changed) this.writeStatus();
  }

  private stopProbing(): void {
    if (this.readinessTimer) clearInterval(this.readinessTimer);
    this.readinessTimer = undefined;
  }

  /** Graceful deletion; called again on later events, so a stuck pod is re-checked and finalizers are waited for. */
  terminate(): void {
    if (this.done) return;
    if (this.opts.stuckTerminating?.(this.pod)) {
      this.frozen = true;
      this.stopProbing();
      return;
    }
    this.frozen = false;
    if (this.terminating) {
      this.removeWhenReleased();
      return;
    }
    this.terminating = true;
    this.controller.abort();
    this.stopProbing();
    void this.killAndRemove().catch((err) => {
      this.kubelet.log.warn({ pod: this.describe(), err: errorMessage(err) }, 'pod termination failed');
    });
  }

  private async killAndRemove(): Promise<void> {
    const grace = asInt(
      this.pod.metadata.deletionGracePeriodSeconds,
      terminationGraceSeconds(this.pod, this.opts.defaultGraceSeconds),
    );
    const running = [...this.init, ...this.main].filter((s) => s.state === 'running' && s.process);
    for (const slot of running) this.event('Normal', 'Killing', `Stopping container ${slot.name}`);
    const stops = running.map((s) =>
      Promise.resolve()
        .then(() => (s.process as ContainerProcess).stop())
        .catch(() => undefined),
    );
    const timedOut = await Promise.race([
      Promise.all(stops).then(() => false),
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), Math.max(0, grace) * this.opts.graceUnitMs);
        this.cancelGrace = () => {
          clearTimeout(timer);
          resolve(true);
        };
      }),
    ]);
    this.cancelGrace();
    await new Promise((resolve) => setImmediate(resolve)); // let exits that follow stop() land
    if (this.done) return; // removed meanwhile, or the kubelet stopped
    for (const slot of running) {
      this.finish(slot, slot.exit ?? { exitCode: timedOut ? 137 : 143 });
    }
    if (this.started && (this.phase === 'Pending' || this.phase === 'Running')) {
      const ran = this.main.filter((s) => s.terminated);
      this.phase =
        ran.length === this.main.length && ran.every((s) => s.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    if (this.started) this.writeStatus(true);
    this.removeWhenReleased();
  }

  /** Removes the pod once no finalizer holds it (the API server's part of a zero-grace delete). */
  private removeWhenReleased(): void {
    if (this.done) return;
    const { namespace, name } = this.pod.metadata;
    const current = this.kubelet.store.get(RESOURCES.pods, namespace, name);
    if (!current || current.metadata.uid !== this.uid) {
      this.finishWorker();
      return;
    }
    if (current.metadata.finalizers?.length) {
      // Without a worker the pod never ran: a terminal phase lets owners (Job tracking) release it.
      if (!this.started && !isTerminal(current)) {
        updateWithRetry(this.kubelet.store, RESOURCES.pods, namespace, name, (cur) => {
          if (cur.metadata.uid !== this.uid) return false;
          cur.status = { ...(asRecord(cur.status) ?? {}), phase: 'Failed' };
        });
      }
      return;
    }
    try {
      this.kubelet.store.remove(RESOURCES.pods, namespace, name);
    } catch (err) {
      if (!(err instanceof StoreError && err.reason === 'NotFound')) throw err;
    }
    this.finishWorker();
  }

  private finishWorker(): void {
    this.done = true;
    this.kubelet.forget(this.uid);
  }

  /** The pod is gone (or the kubelet stops): stop everything without writing anything more. */
  async abort(): Promise<void> {
    const wasDone = this.done;
    this.done = true;
    this.controller.abort();
    this.stopProbing();
    this.cancelGrace();
    if (wasDone && !this.main.concat(this.init).some((s) => s.state === 'running')) return;
    const running = [...this.init, ...this.main].filter((s) => s.state === 'running' && s.process);
    for (const slot of running) slot.state = 'terminated';
    await Promise.all(
      running.map((s) =>
        Promise.race([
          Promise.resolve()
            .then(() => (s.process as ContainerProcess).stop())
            .catch(() => undefined),
          new Promise((resolve) => setTimeout(resolve, 1000).unref()),
        ]),
      ),
    );
  }

  private aborted(): Promise<undefined> {
    const signal = this.controller.signal;
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true }));
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.controller.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string, component = 'kubelet'): void {
    this.kubelet.events.record(this.pod, type, reason, message, component);
  }

  // ---- status ----

  private writeStatus(final = false): void {
    if (this.frozen || (this.done && !final)) return;
    const updated = updateWithRetry(
      this.kubelet.store,
      RESOURCES.pods,
      this.pod.metadata.namespace,
      this.pod.metadata.name,
      (cur) => {
        if (cur.metadata.uid !== this.uid) return false;
        const status = this.buildStatus(cur);
        if (JSON.stringify(status) === JSON.stringify(cur.status)) return false;
        cur.status = status;
      },
    );
    if (updated && updated.metadata.uid === this.uid) this.pod = updated;
  }

  private buildStatus(current: KubeObject): Json {
    const prev = conditionsOf(current);
    const now = rfc3339();
    const condition = (type: string, ok: boolean, reason?: string, message?: string): Json => {
      const status = ok ? 'True' : 'False';
      const before = prev.find((c) => c.type === type);
      const c: Json = {
        type,
        status,
        lastProbeTime: null,
        lastTransitionTime: before?.status === status ? (before.lastTransitionTime ?? now) : now,
      };
      if (reason) c.reason = reason;
      if (message) c.message = message;
      return c;
    };
    const terminal = this.phase === 'Succeeded' || this.phase === 'Failed';
    const incompleteInit = this.init
      .filter((s) => !(s.state === 'terminated' && s.terminated?.exitCode === 0))
      .map((s) => s.name);
    const unready = this.main.filter((s) => !s.ready).map((s) => s.name);
    const allReady = unready.length === 0 && !terminal && !this.terminating;
    const notReadyReason = terminal ? 'PodCompleted' : 'ContainersNotReady';
    const notReadyMessage = terminal ? undefined : `containers with unready status: [${unready.join(' ')}]`;
    const conditions = [
      condition('PodReadyToStartContainers', this.sandboxReady && !terminal),
      this.initialized
        ? condition('Initialized', true, terminal && this.init.length ? 'PodCompleted' : undefined)
        : condition(
            'Initialized',
            false,
            'ContainersNotInitialized',
            `containers with incomplete status: [${incompleteInit.join(' ')}]`,
          ),
      allReady ? condition('Ready', true) : condition('Ready', false, notReadyReason, notReadyMessage),
      allReady
        ? condition('ContainersReady', true)
        : condition('ContainersReady', false, notReadyReason, notReadyMessage),
      condition('PodScheduled', true),
    ];
    const status: Json = {
      phase: this.phase,
      conditions,
      hostIP: HOST_IP,
      hostIPs: [{ ip: HOST_IP }],
    };
    if (this.podIP) {
      status.podIP = this.podIP;
      status.podIPs = [{ ip: this.podIP }];
    }
    if (this.startTime) status.startTime = this.startTime;
    if (this.init.length) status.initContainerStatuses = this.init.map((s) => this.containerStatus(s));
    status.containerStatuses = this.main.map((s) => this.containerStatus(s));
    status.qosClass = asString(asRecord(current.status)?.qosClass) ?? 'BestEffort';
    return status;
  }

  private containerStatus(slot: Slot): Json {
    const image = asString(slot.spec.image) ?? '';
    let state: Json;
    if (slot.state === 'running') state = { running: { startedAt: slot.startedAt } };
    else if (slot.state === 'terminated' && slot.terminated) state = { terminated: { ...slot.terminated } };
    else state = { waiting: { ...slot.waiting } };
    const status: Json = {
      name: slot.name,
      state,
      lastState: slot.lastTerminated ? { terminated: { ...slot.lastTerminated } } : {},
      ready: slot.ready,
      restartCount: slot.restartCount,
      image,
      imageID: slot.containerID ? imageID(image) : '',
      started: slot.state === 'running',
    };
    if (slot.containerID) status.containerID = slot.containerID;
    return status;
  }
}
