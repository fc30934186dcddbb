// Section 3: the coordinator's own overhead. Simulated cluster (controllers, kubelet, Airflow
// runtime) + real Postgres (one metadata database per release) + the real `serve` process. Each
// release is downgraded 3.1.0 -> 3.0.2 by updating its workloads through the API (the webhook holds
// them); the time from the first update to the last new pod Ready is split into the work the
// simulation is configured to take (exec, pod termination, pod start) and everything else.
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { headForVersion } from '../src/core/heads.js';
import { parseAirflowVersion } from '../src/core/versions.js';
import { KubeRest } from '../src/k8s/rest.js';
import { OPERATION_DATA_KEY, parseOperation } from '../src/coordinator/operation.js';
import { RESOURCES } from '../src/sim/resources.js';
import type { ExecIO, ExecRequest, KubeObject, WatchEvent } from '../src/sim/types.js';
import { createInStore, ensureNamespace, makeTls, registerWebhook, startBenchCluster, type BenchCluster } from './cluster.js';
import { admissionCases, releaseWorkloads, RELEASE_COMPONENTS } from './fixtures.js';
import type { LoadResult } from './loadgen.js';
import { seedAlembicRevision, type BenchPostgres } from './postgres.js';
import { cpuMs, runLoadgen, startFloor, startServe, waitUntil, type ServeProcess, type Tls } from './processes.js';
import { median } from './stats.js';

const FROM = '3.1.0';
const TO = '3.0.2';
const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

/** Timings of the simulation: its defaults (src/sim), stated here so the report can quote them. */
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
  /** Where the overhead sits, between the moments the guard's Events mark. */
  gaps: { open: number; toExec: number; verify: number; drain: number; release: number; start: number };
}

export interface ConcurrencyResult {
  releases: number;
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
}

export interface CoordinatorReport {
  results: ConcurrencyResult[];
  maxConcurrentExecs: number;
  probeIdle?: LoadResult;
  probeBusy?: LoadResult;
  /** The same probe against the bare floor server at the same moments: how much of the busy p99 is the machine. */
  floorIdle?: LoadResult;
  floorBusy?: LoadResult;
  sim: typeof SIM_TIMINGS;
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
  private readonly stops: Array<() => void> = [];

  constructor(private readonly cluster: BenchCluster) {
    const store = cluster.sim.store;
    this.stops.push(store.watch(RESOURCES.pods, undefined, undefined, (e) => this.onPod(e)));
    this.stops.push(store.watch(RESOURCES.events, undefined, undefined, (e) => this.onEvent(e)));
    this.stops.push(store.watch(RESOURCES.configmaps, undefined, undefined, (e) => this.onConfigMap(e)));
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
    const conditions = (pod.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? [];
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

async function installReleases(cluster: BenchCluster, pg: BenchPostgres, namespaces: string[]): Promise<void> {
  for (const namespace of namespaces) {
    const url = await pg.createDatabase('release');
    await seedAlembicRevision(url, head(FROM));
    ensureNamespace(cluster.sim, namespace);
    createInStore(cluster.sim, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'airflow-metadata', namespace }, type: 'Opaque', data: { connection: Buffer.from(url).toString('base64') } });
    for (const obj of releaseWorkloads('airflow', namespace, FROM)) createInStore(cluster.sim, withInitEnv(obj));
  }
  await waitUntil(`${namespaces.length} releases running ${FROM}`, () => namespaces.every((ns) => releaseRunning(cluster, ns, FROM)), 120_000, 100).catch((error: unknown) => {
    const stuck = namespaces.find((ns) => !releaseRunning(cluster, ns, FROM))!;
    const pods = cluster.sim.store.list(RESOURCES.pods, stuck).items.map((p) => `${p.metadata.name} ${JSON.stringify(p.status).slice(0, 200)}`);
    throw new Error(`${(error as Error).message}; pods of ${stuck}:\n${pods.join('\n')}`);
  });
}

/** The chart gives the migration-wait init container the metadata connection too (each release has its own database here). */
function withInitEnv(obj: Record<string, unknown>): Record<string, unknown> {
  const spec = (obj.spec as { template?: { spec: { containers: Array<{ env?: unknown[] }>; initContainers?: Array<{ env?: unknown[] }> } } }).template?.spec;
  const env = spec?.containers[0]?.env;
  if (env) for (const c of spec.initContainers ?? []) c.env = structuredClone(env);
  return obj;
}

function releaseRunning(cluster: BenchCluster, namespace: string, version: string): boolean {
  const pods = cluster.sim.store.list(RESOURCES.pods, namespace).items.filter((p) => !p.metadata.deletionTimestamp);
  return RELEASE_COMPONENTS.every((component) => {
    const mine = pods.filter((p) => p.metadata.labels?.component === component);
    const want = component === 'statsd' ? 'statsd-exporter' : `apache/airflow:${version}`;
    return (
      mine.length === 1 &&
      mine.every((p) => {
        const status = p.status as { phase?: string; conditions?: Array<{ type: string; status: string }> } | undefined;
        const image = (p.spec as { containers: Array<{ image: string }> }).containers[0]?.image ?? '';
        return status?.phase === 'Running' && (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') && image.includes(want);
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
    body: [{ op: 'replace', path: '/spec/jobTemplate/spec/template/spec/containers/0/image', value: `apache/airflow:${TO}` }],
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
    open: phase('confirm') - t0,
    toExec: running - phase('confirm'),
    verify: phase('drain') - exec.end,
    drain: phase('release') - phase('drain') - terminationMs,
    release: done - phase('release'),
    start: end - done - podStartMs,
  };
  return { namespace, totalMs, execMs, execWaitMs, terminationMs, podStartMs, inherentMs, overheadMs: totalMs - inherentMs - execWaitMs, toDoneMs: done - t0, gaps };
}

/** The guard's own API requests (its ServiceAccount) in these namespaces since `since`, by "verb resource". */
function guardRequests(cluster: BenchCluster, namespaces: Set<string>, since: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of cluster.sim.api.requests) {
    if (!r.user.startsWith('system:serviceaccount:') || !r.namespace || !namespaces.has(r.namespace) || Date.parse(r.time) < since) continue;
    const key = `${r.verb} ${r.resource}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function removeReleases(cluster: BenchCluster, namespaces: string[]): Promise<void> {
  const store = cluster.sim.store;
  for (const ns of namespaces) {
    for (const type of [RESOURCES.deployments, RESOURCES.cronjobs]) {
      for (const obj of store.list(type, ns).items) store.remove(type, ns, obj.metadata.name);
    }
  }
  // The garbage collector and kubelet take the pods down; wait so the next run starts quiet.
  await waitUntil('old releases gone', () => namespaces.every((ns) => store.list(RESOURCES.pods, ns).items.length === 0), 60_000, 200).catch(() => undefined);
}

export interface CoordinatorSettings {
  concurrency: number[];
  maxConcurrentExecs: number;
  probe: { concurrency: number; ratePerWorker: number; durationMs: number };
  nodeFlags?: string[];
}

export async function runCoordinatorBench(dir: string, pg: BenchPostgres, settings: CoordinatorSettings, log: (line: string) => void): Promise<CoordinatorReport> {
  const tls: Tls = makeTls(dir);
  const defaultDb = await pg.createDatabase('default');
  const cluster = await startBenchCluster(dir, {
    databaseUrl: defaultDb,
    podStartDelayMs: SIM_TIMINGS.podStartDelayMs,
    controllers: { readyDelayMs: SIM_TIMINGS.kubeletReadyDelayMs, probeIntervalMs: SIM_TIMINGS.probeIntervalMs, graceUnitMs: SIM_TIMINGS.graceUnitMs },
    runtime: { stepDurationMs: SIM_TIMINGS.migrationStepMs, checkIntervalMs: SIM_TIMINGS.schemaCheckIntervalMs, readyDelayMs: SIM_TIMINGS.containerReadyDelayMs, secondMs: SIM_TIMINGS.cliSecondMs, ...(process.env.ADG_DEBUG ? { log: (line: string, src: { namespace: string; pod: string; container: string }) => process.stderr.write(`[sim ${src.namespace}/${src.pod}/${src.container}] ${line}\n`) } : {}) },
  });
  const timeline = new Timeline(cluster);
  const admin = new KubeConfig();
  admin.loadFromString(cluster.sim.api.kubeconfig());
  const rest = new KubeRest(admin);
  let serve: ServeProcess | undefined;
  let stopFloor: (() => Promise<void>) | undefined;
  const report: CoordinatorReport = { results: [], maxConcurrentExecs: settings.maxConcurrentExecs, sim: SIM_TIMINGS };
  try {
    serve = await startServe({
      tls,
      kubeconfig: cluster.guardKubeconfig,
      logFile: path.join(dir, 'serve-coordinator.log'),
      extraArgs: ['--max-concurrent-execs', String(settings.maxConcurrentExecs)],
      ...(settings.nodeFlags ? { nodeFlags: settings.nodeFlags } : {}),
    });
    registerWebhook(cluster.sim, serve.url, tls.caPem);
    const probeBody = path.join(dir, 'probe-body.json');
    writeFileSync(probeBody, JSON.stringify(admissionCases('bench-probe').find((c) => c.name === 'no-change')!.review));
    const floor = await startFloor(tls);
    stopFloor = () => floor.stop();
    const probeOf = (url: string) => (durationMs: number, name: string): Promise<LoadResult> =>
      runLoadgen({ url: `${url}/mutate`, caFile: tls.caFile, bodyFile: probeBody, concurrency: settings.probe.concurrency, ratePerWorker: settings.probe.ratePerWorker, durationMs, warmupMs: 500, maxRequests: 100_000 }, dir, name);
    const probe = probeOf(serve.url);
    const floorProbe = probeOf(floor.url);

    const last = settings.concurrency[settings.concurrency.length - 1];
    for (const [run, n] of settings.concurrency.entries()) {
      const namespaces = Array.from({ length: n }, (_, i) => releaseNamespace(run, i));
      const installStarted = Date.now();
      await installReleases(cluster, pg, namespaces);
      log(`  ${n} release(s) installed and running ${FROM} in ${Date.now() - installStarted} ms`);
      const withProbe = n === last;
      if (withProbe) {
        [report.probeIdle, report.floorIdle] = await Promise.all([
          probe(settings.probe.durationMs, 'probe-idle'),
          floorProbe(settings.probe.durationMs, 'floor-idle'),
        ]);
      }
      const t0 = new Map<string, number>();
      const started = Date.now();
      const simCpuBefore = process.cpuUsage();
      const serveCpuBefore = cpuMs(serve.child.pid!);
      const busyProbe = withProbe ? probe(settings.probe.durationMs, 'probe-busy') : undefined;
      const busyFloor = withProbe ? floorProbe(settings.probe.durationMs, 'floor-busy') : undefined;
      await Promise.all(namespaces.map(async (ns) => {
        t0.set(ns, Date.now());
        await downgradeRelease(rest, ns);
      }));
      await waitUntil(`${n} downgrades done`, () => namespaces.every((ns) => timeline.done.has(ns) && releaseRunning(cluster, ns, TO)), 180_000, 50);
      const wallMs = Date.now() - started;
      const simCpuUsed = process.cpuUsage(simCpuBefore);
      const simCpu = (simCpuUsed.user + simCpuUsed.system) / 1000 / wallMs;
      const serveCpu = (cpuMs(serve.child.pid!) - serveCpuBefore) / wallMs;
      if (busyProbe) report.probeBusy = await busyProbe;
      if (busyFloor) report.floorBusy = await busyFloor;
      const operations = namespaces.map((ns) => timingOf(timeline, ns, t0.get(ns)!));
      const requests = guardRequests(cluster, new Set(namespaces), started);
      const overheads = operations.map((o) => o.overheadMs);
      const guardRequestsPerOp = Object.values(requests).reduce((a, b) => a + b, 0) / n;
      report.results.push({ releases: n, operations, medianOverheadMs: median(overheads), maxOverheadMs: Math.max(...overheads), medianTotalMs: median(operations.map((o) => o.totalMs)), wallMs, simCpu, serveCpu, guardRequestsPerOp, guardRequests: requests });
      log(`  ${n} concurrent downgrade(s): wall ${wallMs} ms, median overhead ${median(overheads).toFixed(0)} ms, guard API requests per operation ${guardRequestsPerOp.toFixed(1)} (${Object.entries(requests).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(1)}`).join(', ')})`);
      await removeReleases(cluster, namespaces);
    }
    return report;
  } finally {
    timeline.stop();
    await serve?.stop();
    await stopFloor?.();
    rest.close();
    await cluster.stop();
  }
}
