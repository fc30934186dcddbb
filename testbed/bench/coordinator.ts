// Section 3: the coordinator's own overhead. Simulated cluster (controllers, kubelet, Airflow
// runtime) + real Postgres (one metadata database per release) + the real `serve` process. Each
// release is downgraded 3.1.0 -> 3.0.2 by updating its workloads through the API (the webhook holds
// them); the time from the first update to the last new pod Ready is split into the work the
// simulation is configured to take (exec, pod termination, pod start) and everything else.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { ANNOTATIONS } from '../../src/core/config.js';
import { headForVersion } from '../../src/core/heads.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { OPERATION_DATA_KEY, parseOperation } from '../../src/coordinator/operation.js';
import { RESOURCES } from '../sim/resources.js';
import type { ExecIO, ExecRequest, KubeObject, WatchEvent } from '../sim/types.js';
import { createInStore, ensureNamespace } from './cluster.js';
import { admissionCases, releaseWorkloads, RELEASE_COMPONENTS } from './fixtures.js';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { seedAlembicRevision } from './postgres.js';
import {
  cpuMs,
  niceOf,
  prepareLoadgen,
  processTree,
  threadNiceOf,
  startFloor,
  startServe,
  waitUntil,
  type PreparedLoad,
  type ServeProcess,
} from './processes.js';
import { median, summarise, type LatencySummary } from './stats.js';
import { startTestbed, type Testbed, type TestbedPostgres } from '../start.js';

const FROM = '3.1.0';
/** Each probe run's first requests (connections, the load generator's own warm-up) are not measured. */
const PROBE_WARMUP_MS = 300;
const TO = '3.0.2';
const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

/** Timings of the simulation: its defaults (testbed/sim), stated here so the report can quote them. */
export const SIM_TIMINGS = {
  podStartDelayMs: 300,
  kubeletReadyDelayMs: 200,
  probeIntervalMs: 100,
  graceUnitMs: 1000,
  migrationStepMs: 200,
  schemaCheckIntervalMs: 200,
  containerReadyDelayMs: 300,
  cliSecondMs: 1000,
};

export interface OperationTiming {
  namespace: string;
  totalMs: number;
  /** Exec of `airflow db downgrade` as the simulated container ran it. */
  execMs: number;
  /**
   * From the operation's `downgrade` phase to the exec starting in the pod: the migration-lock and
   * revision probes (pooled, a few ms), waiting for an exec slot (--max-concurrent-execs), opening the stream.
   */
  execWaitMs: number;
  /** Longest old pod from deletion to gone. */
  terminationMs: number;
  /** Longest new pod from creation to Ready. */
  podStartMs: number;
  inherentMs: number;
  overheadMs: number;
  /** Admission (first update) to the operation's `done`. */
  toDoneMs: number;
  /** The outage: the drain's start (phase quiesce in drain-first, drain in downgrade-first) to the last new pod Ready. */
  outageMs: number;
  /** Where the overhead sits, between the moments the guard's Events mark. */
  gaps: { held: number; open: number; toExec: number; verify: number; drain: number; release: number; start: number };
}

export interface ConcurrencyResult {
  releases: number;
  /** Measured while the admission probe ran (its processes take CPU too): reported apart from the levels. */
  probed?: boolean;
  /** Runs of this many downgrades at once (the busiest level runs several, each probed). */
  rounds: number;
  operations: OperationTiming[];
  medianOverheadMs: number;
  maxOverheadMs: number;
  medianTotalMs: number;
  wallMs: number;
  /** CPU used per wall second during the run (1.0 = one core busy): the bench process (simulated cluster) and serve. */
  simCpu: number;
  serveCpu: number;
  /** API requests the guard made in the releases' namespaces, per operation, by verb and resource. */
  guardRequestsPerOp: number;
  guardRequests: Record<string, number>;
  /** API request latency in the simulated API server (watches and exec streams left out): the guard's, and the user's PATCHes (which include the webhook call). */
  guardRequestMs: LatencySummary;
  userPatchMs: LatencySummary;
  /** Event-loop delay of the simulated cluster while the downgrades ran: how long a request waited before the API server's handler even started. */
  simLoopDelayMs: { p50: number; p99: number; max: number };
}

export interface CoordinatorReport {
  results: ConcurrencyResult[];
  /** Newer pods that ran on the older schema (the simulated runtime's stale-schema exposures) and older pods on a newer one, over the whole run. */
  exposures?: number;
  violations?: number;
  maxConcurrentExecs: number;
  /** Whether the probed rounds ran with the cluster and the guard on separate CPUs. */
  pinned?: boolean;
  /** The busiest level's probed rounds, merged. */
  probedResult?: ConcurrencyResult;
  /** Probe latencies merged over the rounds (requests/s: probeRate). */
  probeIdle?: LatencySummary;
  probeBusy?: LatencySummary;
  /** The same probe against the bare floor server at the same moments: how much of the busy p99 is the machine. */
  floorIdle?: LatencySummary;
  floorBusy?: LatencySummary;
  probeRate?: number;
  probeRounds?: number;
  probeIdleMs?: number;
  sim: typeof SIM_TIMINGS;
  /** What was lowered in priority, and to what (see lowerClusterPriority). */
  clusterNice?: ClusterNice;
}

export interface ClusterNice {
  requested: number;
  /** The benchmark's main thread (the simulated cluster). */
  simulation: number | 'not changed';
  /** Postgres processes lowered (the postmaster and its children; backends started later inherit it). */
  postgresProcesses: number;
  /** The guard's threads (serve lowers its coordinator thread itself, --coordinator-nice) and the floor, which stay as they were. */
  guardAdmission: number | undefined;
  guardCoordinator: number | undefined;
  floor: number;
  note?: string;
}

/**
 * For the probed rounds: the simulated cluster (this whole process) and Postgres on the first CPU,
 * the guard, the floor server and the probes on the others — as if the cluster ran on other machines,
 * which a lower priority alone does not achieve on two shared cores. Linux with `taskset` and at
 * least two CPUs; returns how to undo it, or undefined when it could not be done.
 */
function pinCpus(pg: TestbedPostgres, guardSide: number[], log: (line: string) => void): (() => void) | undefined {
  const cpus = os.availableParallelism();
  if (process.platform !== 'linux' || cpus < 2) {
    log(`  CPU pinning skipped: needs Linux and two CPUs (${process.platform}, ${cpus})`);
    return undefined;
  }
  const set = (list: string, pids: number[]): boolean =>
    pids.every((pid) => spawnSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' }).status === 0);
  const postmaster = pg.serverPid();
  const cluster = [process.pid, ...(postmaster === undefined ? [] : processTree(postmaster))];
  const all = `0-${cpus - 1}`;
  if (!set('0', cluster) || !set(`1-${cpus - 1}`, guardSide)) {
    set(all, [...cluster, ...guardSide]);
    log('  CPU pinning skipped: taskset failed or is missing');
    return undefined;
  }
  log(
    `  probed rounds: simulated cluster${postmaster === undefined ? '' : ' and Postgres'} on CPU 0, guard, floor and probes on CPU 1${cpus > 2 ? `-${cpus - 1}` : ''}`,
  );
  return () => {
    const postmasterNow = pg.serverPid();
    set(all, [process.pid, ...(postmasterNow === undefined ? [] : processTree(postmasterNow))]);
  };
}

/**
 * On the real cluster the API server, the kubelets and the databases run on other machines than the
 * guard; here they share two cores with it. A lower priority (a higher nice value) for them keeps
 * their CPU from the guard, the floor server and the probes, without slowing them when a core is free.
 * Linux applies os.setPriority(0, n) to the calling thread only: the main thread, where the
 * simulation runs.
 */
function lowerClusterPriority(
  nice: number,
  pg: TestbedPostgres,
  keep: number[],
  log: (line: string) => void,
): ClusterNice {
  const [guardPid, floorPid] = keep as [number, number];
  const result: ClusterNice = {
    requested: nice,
    simulation: 'not changed',
    postgresProcesses: 0,
    guardAdmission: threadNiceOf(guardPid, 'admission'),
    guardCoordinator: threadNiceOf(guardPid, 'MainThread'),
    floor: niceOf(floorPid),
  };
  if (nice <= 0) return result;
  try {
    os.setPriority(0, nice);
    result.simulation = os.getPriority(0);
    const postmaster = pg.serverPid();
    if (postmaster === undefined) result.note = 'Postgres is not ours (DATABASE_URL): left as it is';
    else {
      for (const pid of processTree(postmaster)) {
        try {
          os.setPriority(pid, nice);
          result.postgresProcesses += 1;
        } catch {
          // a backend that ended meanwhile
        }
      }
    }
  } catch (error) {
    result.note = `could not lower priorities: ${(error as Error).message}`;
  }
  log(
    `  cluster priority: simulation nice ${result.simulation}, ${result.postgresProcesses} Postgres processes at nice ${nice}; guard admission thread ${result.guardAdmission}, coordinator thread ${result.guardCoordinator}; floor ${result.floor}${result.note ? ` (${result.note})` : ''}`,
  );
  return result;
}

interface PodTimes {
  namespace: string;
  version: string;
  created: number;
  ready?: number;
  deleting?: number;
  gone?: number;
}

/** Watches the store in-process and keeps the moments that matter per release namespace. */
class Timeline {
  readonly pods = new Map<string, PodTimes>();
  readonly events = new Map<string, Map<string, number>>();
  readonly done = new Map<string, number>();
  /** Per namespace: when the operation's ConfigMap first showed each phase (written before the phase runs). */
  readonly phases = new Map<string, Map<string, number>>();
  readonly execs = new Map<string, { start: number; end?: number }>();
  /** Per namespace: when the store first held a workload of it (the webhook's answer applied). */
  readonly held = new Map<string, number>();
  private readonly stops: Array<() => void> = [];

  constructor(private readonly cluster: Testbed) {
    const store = cluster.sim.store;
    const readOnly = { readOnly: true };
    this.stops.push(store.watch(RESOURCES.pods, undefined, undefined, (e) => this.onPod(e), readOnly));
    this.stops.push(store.watch(RESOURCES.events, undefined, undefined, (e) => this.onEvent(e), readOnly));
    this.stops.push(store.watch(RESOURCES.configmaps, undefined, undefined, (e) => this.onConfigMap(e), readOnly));
    this.stops.push(
      store.watch(
        RESOURCES.deployments,
        undefined,
        undefined,
        (e) => {
          const ns = e.object.metadata.namespace ?? '';
          if (!this.held.has(ns) && e.object.metadata.annotations?.[ANNOTATIONS.operation])
            this.held.set(ns, Date.now());
        },
        readOnly,
      ),
    );
    // The exec as the container runs it: the simulated runtime's own start and end.
    const runtime = cluster.sim.runtime;
    const exec = runtime.exec.bind(runtime);
    runtime.exec = async (req: ExecRequest, io: ExecIO) => {
      const downgrade = req.command.includes('downgrade');
      const entry = { start: Date.now() } as { start: number; end?: number };
      if (downgrade) this.execs.set(req.namespace, entry);
      try {
        return await exec(req, io);
      } finally {
        entry.end = Date.now();
      }
    };
  }

  private onPod(e: WatchEvent): void {
    const pod = e.object;
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const now = Date.now();
    let t = this.pods.get(key);
    if (!t) {
      const image = (pod.spec as { containers?: Array<{ image?: string }> }).containers?.[0]?.image ?? '';
      t = { namespace: pod.metadata.namespace ?? '', version: image.split(':').pop() ?? '', created: now };
      this.pods.set(key, t);
    }
    if (e.type === 'DELETED') {
      t.gone ??= now;
      return;
    }
    if (pod.metadata.deletionTimestamp) t.deleting ??= now;
    const conditions =
      (pod.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Ready' && c.status === 'True')) t.ready ??= now;
  }

  private onEvent(e: WatchEvent): void {
    if (e.type !== 'ADDED') return;
    const ev = e.object as KubeObject & { reason?: string };
    const ns = ev.metadata.namespace ?? '';
    const reasons = this.events.get(ns) ?? new Map<string, number>();
    this.events.set(ns, reasons);
    if (ev.reason && !reasons.has(ev.reason)) reasons.set(ev.reason, Date.now());
  }

  private onConfigMap(e: WatchEvent): void {
    const text = (e.object as { data?: Record<string, string> }).data?.[OPERATION_DATA_KEY];
    if (!text) return;
    try {
      const ns = e.object.metadata.namespace ?? '';
      const phase = parseOperation(text).phase;
      const seen = this.phases.get(ns) ?? new Map<string, number>();
      this.phases.set(ns, seen);
      if (!seen.has(phase)) seen.set(phase, Date.now());
      if (phase === 'done') this.done.set(ns, Date.now());
    } catch {
      // not an operation we can read; ignore
    }
  }

  podsOf(namespace: string): PodTimes[] {
    return [...this.pods.values()].filter((p) => p.namespace === namespace);
  }

  stop(): void {
    for (const s of this.stops) s();
  }
}

function releaseNamespace(run: number, i: number): string {
  return `bench-c${run}-${i}`;
}

async function installReleases(cluster: Testbed, pg: TestbedPostgres, namespaces: string[]): Promise<void> {
  for (const namespace of namespaces) {
    const url = await pg.createDatabase('release');
    await seedAlembicRevision(url, head(FROM));
    ensureNamespace(cluster.sim, namespace);
    createInStore(cluster.sim, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'airflow-metadata', namespace },
      type: 'Opaque',
      data: { connection: Buffer.from(url).toString('base64') },
    });
    for (const obj of releaseWorkloads('airflow', namespace, FROM)) createInStore(cluster.sim, withInitEnv(obj));
  }
  await waitUntil(
    `${namespaces.length} releases running ${FROM}`,
    () => namespaces.every((ns) => releaseRunning(cluster, ns, FROM)),
    120_000,
    100,
  ).catch((error: unknown) => {
    const stuck = namespaces.find((ns) => !releaseRunning(cluster, ns, FROM))!;
    const pods = cluster.sim.store
      .list(RESOURCES.pods, stuck)
      .items.map((p) => `${p.metadata.name} ${JSON.stringify(p.status).slice(0, 200)}`);
    throw new Error(`${(error as Error).message}; pods of ${stuck}:\n${pods.join('\n')}`);
  });
}

/** The chart gives the migration-wait init container the metadata connection too (each release has its own database here). */
function withInitEnv(obj: Record<string, unknown>): Record<string, unknown> {
  const spec = (
    obj.spec as {
      template?: { spec: { containers: Array<{ env?: unknown[] }>; initContainers?: Array<{ env?: unknown[] }> } };
    }
  ).template?.spec;
  const env = spec?.containers[0]?.env;
  if (env) for (const c of spec.initContainers ?? []) c.env = structuredClone(env);
  return obj;
}

function releaseRunning(cluster: Testbed, namespace: string, version: string): boolean {
  const pods = cluster.sim.store.list(RESOURCES.pods, namespace).items.filter((p) => !p.metadata.deletionTimestamp);
  return RELEASE_COMPONENTS.every((component) => {
    const mine = pods.filter((p) => p.metadata.labels?.component === component);
    const want = component === 'statsd' ? 'statsd-exporter' : `apache/airflow:${version}`;
    return (
      mine.length === 1 &&
      mine.every((p) => {
        const status = p.status as { phase?: string; conditions?: Array<{ type: string; status: string }> } | undefined;
        const image = (p.spec as { containers: Array<{ image: string }> }).containers[0]?.image ?? '';
        return (
          status?.phase === 'Running' &&
          (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') &&
          image.includes(want)
        );
      })
    );
  });
}

/** The user's downgrade: every Airflow workload of the release gets the 3.0.2 image (Helm-like, through the webhook). */
async function downgradeRelease(rest: KubeRest, namespace: string): Promise<void> {
  for (const component of RELEASE_COMPONENTS.filter((c) => c !== 'statsd')) {
    await rest.request('PATCH', `/apis/apps/v1/namespaces/${namespace}/deployments/airflow-${component}`, {
      body: [
        { op: 'replace', path: '/spec/template/spec/containers/0/image', value: `apache/airflow:${TO}` },
        { op: 'replace', path: '/spec/template/spec/initContainers/0/image', value: `apache/airflow:${TO}` },
      ],
      contentType: 'application/json-patch+json',
    });
  }
  await rest.request('PATCH', `/apis/batch/v1/namespaces/${namespace}/cronjobs/airflow-database-cleanup`, {
    body: [
      { op: 'replace', path: '/spec/jobTemplate/spec/template/spec/containers/0/image', value: `apache/airflow:${TO}` },
    ],
    contentType: 'application/json-patch+json',
  });
}

function timingOf(timeline: Timeline, namespace: string, t0: number): OperationTiming {
  const pods = timeline.podsOf(namespace);
  const oldPods = pods.filter((p) => p.version === FROM && p.deleting !== undefined);
  const newPods = pods.filter((p) => p.version === TO && p.created >= t0);
  const exec = timeline.execs.get(namespace);
  // Phase changes as the ConfigMap shows them: the guard's Events are queued off the critical path, so
  // their arrival says when the writer got to them, not when the step happened.
  const phase = (name: string): number => timeline.phases.get(namespace)?.get(name) ?? Number.NaN;
  const running = phase('downgrade');
  if (!exec?.end || Number.isNaN(running)) throw new Error(`${namespace}: no downgrade exec was seen`);
  const end = Math.max(...newPods.map((p) => p.ready ?? Number.NaN));
  const done = timeline.done.get(namespace);
  if (!Number.isFinite(end) || done === undefined) throw new Error(`${namespace}: the release did not finish`);
  const execMs = exec.end - exec.start;
  const execWaitMs = Math.max(0, exec.start - running);
  const terminationMs = Math.max(0, ...oldPods.map((p) => (p.gone ?? p.deleting!) - p.deleting!));
  const podStartMs = Math.max(0, ...newPods.map((p) => p.ready! - p.created));
  const totalMs = end - t0;
  const inherentMs = execMs + terminationMs + podStartMs;
  const gaps = {
    held: (timeline.held.get(namespace) ?? Number.NaN) - t0,
    open: phase('confirm') - (timeline.held.get(namespace) ?? Number.NaN),
    toExec: running - phase('confirm'),
    verify: phase('drain') - exec.end,
    drain: phase('release') - phase('drain') - terminationMs,
    release: done - phase('release'),
    start: end - done - podStartMs,
  };
  const drainStart = Number.isNaN(phase('quiesce')) ? phase('drain') : phase('quiesce');
  return {
    namespace,
    totalMs,
    execMs,
    execWaitMs,
    terminationMs,
    podStartMs,
    inherentMs,
    overheadMs: totalMs - inherentMs - execWaitMs,
    toDoneMs: done - t0,
    outageMs: end - drainStart,
    gaps,
  };
}

interface RequestLog {
  /** Per namespace: when the first PATCH of a user (not the guard) reached the API server. */
  userChangeArrivals: Map<string, number>;
  /** The guard's own API requests (its ServiceAccount), by "verb resource". */
  guardRequests: Record<string, number>;
  /** Time inside the API server (watches and exec streams left out): the guard's requests, the users' PATCHes. */
  guardMs: number[];
  userPatchMs: number[];
}

/** One pass over the simulated API server's request log, for these namespaces since `since`. */
function readRequestLog(cluster: Testbed, namespaces: Set<string>, since: number): RequestLog {
  const log: RequestLog = { userChangeArrivals: new Map(), guardRequests: {}, guardMs: [], userPatchMs: [] };
  for (const r of cluster.sim.api.requests) {
    if (!r.namespace || !namespaces.has(r.namespace)) continue;
    const arrived = Date.parse(r.time) - r.durationMs;
    if (arrived < since - 1) continue;
    const guard = r.user.startsWith('system:serviceaccount:');
    const timed = r.verb !== 'watch' && r.subresource !== 'exec';
    if (guard) {
      const key = `${r.verb} ${r.resource}`;
      log.guardRequests[key] = (log.guardRequests[key] ?? 0) + 1;
      if (timed) log.guardMs.push(r.durationMs);
    } else if (r.verb === 'patch') {
      log.userPatchMs.push(r.durationMs);
      if (arrived < (log.userChangeArrivals.get(r.namespace) ?? Infinity))
        log.userChangeArrivals.set(r.namespace, arrived);
    }
  }
  return log;
}

interface RoundProbes {
  guardIdle: PreparedLoad;
  floorIdle: PreparedLoad;
  guardBusy: PreparedLoad;
  floorBusy: PreparedLoad;
}

interface RoundResult {
  operations: OperationTiming[];
  wallMs: number;
  simCpu: number;
  serveCpu: number;
  requests: Record<string, number>;
  latencies: { guard: number[]; userPatch: number[] };
  simLoopDelayMs: { p50: number; p99: number; max: number };
}

/** One level's rounds as one result: medians over every operation, wall time the median round's. */
function mergeRounds(releases: number, rounds: RoundResult[]): ConcurrencyResult {
  const operations = rounds.flatMap((r) => r.operations);
  const overheads = operations.map((o) => o.overheadMs);
  const requests: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.requests)) requests[k] = (requests[k] ?? 0) + v;
  const mean = (f: (r: RoundResult) => number): number => rounds.reduce((sum, r) => sum + f(r), 0) / rounds.length;
  return {
    releases,
    rounds: rounds.length,
    operations,
    medianOverheadMs: median(overheads),
    maxOverheadMs: Math.max(...overheads),
    medianTotalMs: median(operations.map((o) => o.totalMs)),
    wallMs: median(rounds.map((r) => r.wallMs)),
    simCpu: mean((r) => r.simCpu),
    serveCpu: mean((r) => r.serveCpu),
    guardRequestsPerOp: Object.values(requests).reduce((a, b) => a + b, 0) / operations.length,
    guardRequests: requests,
    guardRequestMs: summarise(rounds.flatMap((r) => r.latencies.guard)),
    userPatchMs: summarise(rounds.flatMap((r) => r.latencies.userPatch)),
    simLoopDelayMs: {
      p50: median(rounds.map((r) => r.simLoopDelayMs.p50)),
      p99: median(rounds.map((r) => r.simLoopDelayMs.p99)),
      max: Math.max(...rounds.map((r) => r.simLoopDelayMs.max)),
    },
  };
}

async function removeReleases(cluster: Testbed, namespaces: string[]): Promise<void> {
  const store = cluster.sim.store;
  for (const ns of namespaces) {
    for (const type of [RESOURCES.deployments, RESOURCES.cronjobs]) {
      for (const obj of store.list(type, ns).items) store.remove(type, ns, obj.metadata.name);
    }
  }
  // The garbage collector and kubelet take the pods down; wait so the next run starts quiet.
  await waitUntil(
    'old releases gone',
    () => namespaces.every((ns) => store.list(RESOURCES.pods, ns).items.length === 0),
    60_000,
    200,
  ).catch(() => undefined);
}

export interface CoordinatorSettings {
  concurrency: number[];
  maxConcurrentExecs: number;
  /** Admission probe: rounds of the busiest level run again, each idleMs idle, then for as long as its downgrades run (0: none). */
  probe: { concurrency: number; ratePerWorker: number; idleMs: number; rounds: number };
  nodeFlags?: string[];
  /** Nice value for the simulated cluster and Postgres (0: same priority as the guard). */
  clusterNice: number;
  /** Probed rounds: the simulated cluster and Postgres on CPU 0, the guard and the probes on the rest. */
  pinCpus: boolean;
  /** Extra `serve` flags (e.g. --coordinator-nice 0). */
  serveArgs: string[];
}

export async function runCoordinatorBench(
  dir: string,
  pg: TestbedPostgres,
  settings: CoordinatorSettings,
  log: (line: string) => void,
): Promise<CoordinatorReport> {
  const defaultDb = await pg.createDatabase('default');
  const cluster = await startTestbed({
    prefix: 'adg-bench-coordinator-',
    sim: {
      databaseUrl: defaultDb,
      podStartDelayMs: SIM_TIMINGS.podStartDelayMs,
      controllers: {
        readyDelayMs: SIM_TIMINGS.kubeletReadyDelayMs,
        probeIntervalMs: SIM_TIMINGS.probeIntervalMs,
        graceUnitMs: SIM_TIMINGS.graceUnitMs,
      },
      runtime: {
        stepDurationMs: SIM_TIMINGS.migrationStepMs,
        checkIntervalMs: SIM_TIMINGS.schemaCheckIntervalMs,
        readyDelayMs: SIM_TIMINGS.containerReadyDelayMs,
        secondMs: SIM_TIMINGS.cliSecondMs,
        ...(process.env.ADG_DEBUG
          ? {
              log: (line: string, src: { namespace: string; pod: string; container: string }) =>
                process.stderr.write(`[sim ${src.namespace}/${src.pod}/${src.container}] ${line}\n`),
            }
          : {}),
      },
    },
  });
  const tls = cluster.tls;
  const timeline = new Timeline(cluster);
  const admin = new KubeConfig();
  admin.loadFromString(cluster.sim.api.kubeconfig());
  const rest = new KubeRest(admin);
  let serve: ServeProcess | undefined;
  let stopFloor: (() => Promise<void>) | undefined;
  let cancelProbes = (): void => {};
  const report: CoordinatorReport = { results: [], maxConcurrentExecs: settings.maxConcurrentExecs, sim: SIM_TIMINGS };
  try {
    serve = await startServe({
      tls,
      kubeconfig: cluster.guardKubeconfig,
      logFile: path.join(dir, 'serve-coordinator.log'),
      extraArgs: ['--max-concurrent-execs', String(settings.maxConcurrentExecs), ...settings.serveArgs],
      ...(settings.nodeFlags ? { nodeFlags: settings.nodeFlags } : {}),
    });
    cluster.registerWebhook(serve.url);
    const probeBody = path.join(dir, 'probe-body.json');
    writeFileSync(probeBody, JSON.stringify(admissionCases('bench-probe').find((c) => c.name === 'no-change')!.review));
    const floor = await startFloor(tls);
    stopFloor = () => floor.stop();
    // The probes start now, at this process's priority, and wait; then the cluster (this process's
    // main thread: API server, controllers, kubelet, simulated Airflow; and Postgres) may be
    // lowered in priority, which models it running on other machines than the guard.
    const probeConfig = (url: string, durationMs: number): LoadConfig => ({
      url: `${url}/mutate`,
      caFile: tls.caFile,
      bodyFile: probeBody,
      concurrency: settings.probe.concurrency,
      ratePerWorker: settings.probe.ratePerWorker,
      durationMs,
      warmupMs: PROBE_WARMUP_MS,
      maxRequests: 1_000_000,
      keepSamples: true,
    });
    const probes: PreparedLoad[] = [];
    cancelProbes = () => probes.forEach((p) => p.cancel());
    const roundProbes: RoundProbes[] = [];
    for (let round = 0; round < settings.probe.rounds; round++) {
      const prepare = async (url: string, what: string, durationMs: number) => {
        const prepared = await prepareLoadgen(probeConfig(url, durationMs), dir, `${what}-${round}`);
        probes.push(prepared);
        return prepared;
      };
      roundProbes.push({
        guardIdle: await prepare(serve.url, 'probe-idle', settings.probe.idleMs),
        floorIdle: await prepare(floor.url, 'floor-idle', settings.probe.idleMs),
        // Stopped when the round's downgrades are done; the duration is only a cap.
        guardBusy: await prepare(serve.url, 'probe-busy', 180_000),
        floorBusy: await prepare(floor.url, 'floor-busy', 180_000),
      });
    }
    report.clusterNice = lowerClusterPriority(settings.clusterNice, pg, [serve.child.pid!, floor.child.pid!], log);

    // Every level once without the probe: the overhead of each is measured under the same load. Then
    // the busiest level again, in probed rounds: admission latency while its downgrades run (those
    // rounds' timings are reported apart, "probed": the probes' processes take CPU too).
    const samples = {
      guardIdle: [] as number[],
      floorIdle: [] as number[],
      guardBusy: [] as number[],
      floorBusy: [] as number[],
    };
    const probeRuns: LoadResult[] = [];
    const runRound = async (n: number, run: number, probes?: RoundProbes): Promise<RoundResult> => {
      const namespaces = Array.from({ length: n }, (_, i) => releaseNamespace(run, i));
      const installStarted = Date.now();
      await installReleases(cluster, pg, namespaces);
      log(`  ${n} release(s) installed and running ${FROM} in ${Date.now() - installStarted} ms`);
      if (probes) {
        const [guard, floorIdle] = await Promise.all([probes.guardIdle.run(), probes.floorIdle.run()]);
        samples.guardIdle.push(...(guard.samplesMs ?? []));
        samples.floorIdle.push(...(floorIdle.samplesMs ?? []));
        probeRuns.push(guard, floorIdle);
      }
      const busy = probes ? [probes.guardBusy.start(), probes.floorBusy.start()] : [];
      const result = await downgradeAtOnce(namespaces);
      if (busy.length) {
        const [guard, floorBusy] = await Promise.all(busy.map((b) => b.stop()));
        samples.guardBusy.push(...(guard!.samplesMs ?? []));
        samples.floorBusy.push(...(floorBusy!.samplesMs ?? []));
        probeRuns.push(guard!, floorBusy!);
      }
      await removeReleases(cluster, namespaces);
      return result;
    };
    const logResult = (r: ConcurrencyResult): void =>
      log(
        `  ${r.releases} concurrent downgrade(s)${r.probed ? ', probed' : ''}: median overhead ${r.medianOverheadMs.toFixed(0)} ms over ${r.operations.length} operations, guard API requests per operation ${r.guardRequestsPerOp.toFixed(1)} (${Object.entries(
          r.guardRequests,
        )
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${(v / r.operations.length).toFixed(1)}`)
          .join(', ')})`,
      );
    for (const [level, n] of settings.concurrency.entries()) {
      const merged = mergeRounds(n, [await runRound(n, level)]);
      report.results.push(merged);
      logResult(merged);
    }
    if (roundProbes.length) {
      const busiest = settings.concurrency[settings.concurrency.length - 1]!;
      const rounds: RoundResult[] = [];
      const guardSide = [serve.child.pid!, floor.child.pid!, ...probes.map((p) => p.pid)];
      const unpin = settings.pinCpus ? pinCpus(pg, guardSide, log) : undefined;
      report.pinned = unpin !== undefined;
      try {
        for (const [round, probes] of roundProbes.entries()) {
          rounds.push(await runRound(busiest, 100 + round, probes));
          log(`  probed round ${round + 1} of ${roundProbes.length} done`);
        }
      } finally {
        unpin?.();
      }
      report.probedResult = { ...mergeRounds(busiest, rounds), probed: true };
      logResult(report.probedResult);
    }
    if (samples.guardIdle.length) {
      const errors = probeRuns.reduce((sum, r) => sum + r.errors, 0);
      if (errors > 0)
        throw new Error(
          `the admission probe saw ${errors} failed requests (${probeRuns.find((r) => r.firstError)?.firstError})`,
        );
      report.probeIdle = summarise(samples.guardIdle);
      report.floorIdle = summarise(samples.floorIdle);
      report.probeBusy = summarise(samples.guardBusy);
      report.floorBusy = summarise(samples.floorBusy);
      report.probeRate = settings.probe.concurrency * settings.probe.ratePerWorker;
      report.probeRounds = settings.probe.rounds;
      report.probeIdleMs = settings.probe.idleMs;
    }

    /** The user changes every release at once; returns when all are downgraded and running the target. */
    async function downgradeAtOnce(namespaces: string[]): Promise<RoundResult> {
      const t0 = new Map<string, number>();
      const loopDelay = monitorEventLoopDelay({ resolution: 5 });
      loopDelay.enable();
      const started = Date.now();
      const simCpuBefore = process.cpuUsage();
      const serveCpuBefore = cpuMs(serve!.child.pid!);
      await Promise.all(
        namespaces.map(async (ns) => {
          t0.set(ns, Date.now());
          await downgradeRelease(rest, ns);
        }),
      );
      await waitUntil(
        `${namespaces.length} downgrades done`,
        () => namespaces.every((ns) => timeline.done.has(ns) && releaseRunning(cluster, ns, TO)),
        180_000,
        50,
      );
      const wallMs = Date.now() - started;
      loopDelay.disable();
      const simCpuUsed = process.cpuUsage(simCpuBefore);
      // "Admission" is when the API server received the release's first change (the webhook call
      // follows at once), not when the benchmark's client sent it: 20 releases' changes leave one
      // client at once, and its own queue is no part of the guard's time.
      const requests = readRequestLog(cluster, new Set(namespaces), started);
      return {
        operations: namespaces.map((ns) => timingOf(timeline, ns, requests.userChangeArrivals.get(ns) ?? t0.get(ns)!)),
        wallMs,
        simCpu: (simCpuUsed.user + simCpuUsed.system) / 1000 / wallMs,
        serveCpu: (cpuMs(serve!.child.pid!) - serveCpuBefore) / wallMs,
        requests: requests.guardRequests,
        latencies: { guard: requests.guardMs, userPatch: requests.userPatchMs },
        simLoopDelayMs: {
          p50: loopDelay.percentile(50) / 1e6,
          p99: loopDelay.percentile(99) / 1e6,
          max: loopDelay.max / 1e6,
        },
      };
    }
    await cluster.sim.runtime.sweep();
    report.exposures = cluster.sim.runtime.violations.exposures().length;
    report.violations = cluster.sim.runtime.violations.list().length;
    return report;
  } finally {
    cancelProbes();
    timeline.stop();
    await serve?.stop();
    await stopFloor?.();
    rest.close();
    await cluster.stop();
  }
}
