// Section 1: admission throughput and latency of the real `serve` process against the floor (a
// bare HTTPS server parsing the same JSON), each a separate process, driven by a separate load
// generator process over HTTPS with keep-alive.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { admissionCases, BENCH_NAMESPACE, type AdmissionCase } from './fixtures.js';
import { seedRelease } from './cluster.js';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { cpuMs, rssBytes, runLoadgen, startFloor, startServe } from './processes.js';
import { median } from './stats.js';
import { startTestbed } from '../start.js';

export interface AdmissionSettings {
  concurrency: number;
  /** Measured time per server and case, split over the rounds. */
  durationMs: number;
  /** Warm-up of each load generator run (each round starts fresh connections). */
  warmupMs: number;
  /**
   * Floor and guard alternate this many times per case (floor first, then guard first, ...): on a
   * shared machine the load from elsewhere drifts, and back-to-back single runs compared noise.
   */
  rounds: number;
  /** Releases the guard watches while it answers (their state is what it looks up). */
  releases: number;
  nodeFlags?: string[];
  /** Only these cases (by name); all when empty. */
  cases?: string[];
}

export interface AdmissionRow {
  name: string;
  bodyBytes: number;
  /** The rounds merged: total requests over total time, median p50/p99 of the rounds, overall max. */
  floor: LoadResult;
  guard: LoadResult;
  /** CPU time of the serve process per request (µs). */
  guardCpuUsPerRequest: number;
  /** CPU time of the floor process per request (µs). */
  floorCpuUsPerRequest: number;
  /** Median of the rounds' guard/floor throughput ratios. */
  ratio: number;
  /** Every round's ratio, in order. */
  roundRatios: number[];
  allowed: boolean;
  patched: boolean;
}

export interface AdmissionReport {
  settings: AdmissionSettings;
  rows: AdmissionRow[];
  serveRssAfterBytes: number;
  serveRssIdleBytes: number;
}

function checkSample(c: AdmissionCase, sample: string): { allowed: boolean; patched: boolean } {
  const review = JSON.parse(sample) as { response?: { allowed?: boolean; patch?: string; warnings?: string[] } };
  const allowed = review.response?.allowed === true;
  if (!allowed) throw new Error(`${c.name}: the guard did not allow the request: ${sample.slice(0, 300)}`);
  return { allowed, patched: review.response?.patch !== undefined };
}

interface Measured {
  result: LoadResult;
  /** CPU time the server used during the run, warm-up included. */
  cpuMs: number;
}

function merge(results: LoadResult[]): LoadResult {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const elapsedMs = results.reduce((n, r) => n + r.elapsedMs, 0);
  return {
    requests,
    errors: results.reduce((n, r) => n + r.errors, 0),
    elapsedMs,
    requestsPerSec: (requests / elapsedMs) * 1000,
    latencyMs: {
      count: requests,
      p50: median(results.map((r) => r.latencyMs.p50)),
      p99: median(results.map((r) => r.latencyMs.p99)),
      max: Math.max(...results.map((r) => r.latencyMs.max)),
      mean: results.reduce((n, r) => n + r.latencyMs.mean * r.requests, 0) / requests,
    },
    sample: results[0]?.sample ?? '',
  };
}

/** Warm-up requests are not timed but use CPU too: each run's requests are counted by its measured rate. */
function cpuUsPerRequest(runs: Measured[], config: Pick<LoadConfig, 'durationMs' | 'warmupMs'>): number {
  const cpu = runs.reduce((n, r) => n + r.cpuMs, 0);
  const requests = runs.reduce(
    (n, r) => n + r.result.requestsPerSec * ((config.durationMs + config.warmupMs) / 1000),
    0,
  );
  return (cpu * 1000) / requests;
}

export async function runAdmissionBench(
  dir: string,
  settings: AdmissionSettings,
  log: (line: string) => void,
): Promise<AdmissionReport> {
  const cluster = await startTestbed({ prefix: 'adg-bench-admission-' });
  const tls = cluster.tls;
  // Only the store matters here: no controllers turning the seeded objects into running containers.
  await cluster.sim.controllers.stop();
  seedRelease(cluster.sim, BENCH_NAMESPACE, 'current', '3.1.0');
  seedRelease(cluster.sim, BENCH_NAMESPACE, 'older', '3.0.2');
  for (let i = 2; i < settings.releases; i++)
    seedRelease(cluster.sim, `tenant-${i % 10}`, `airflow-${i}`, i % 2 ? '3.0.2' : '3.1.0');

  const serve = await startServe({
    tls,
    kubeconfig: cluster.guardKubeconfig,
    logFile: path.join(dir, 'serve-admission.log'),
    ...(settings.nodeFlags ? { nodeFlags: settings.nodeFlags } : {}),
  });
  const floor = await startFloor(tls);
  const rows: AdmissionRow[] = [];
  let serveRssIdleBytes = Number.NaN;
  try {
    serveRssIdleBytes = rssBytes(serve.child.pid!);
    const cases = admissionCases(BENCH_NAMESPACE).filter(
      (c) => !settings.cases?.length || settings.cases.includes(c.name),
    );
    // Warm both servers (JIT, TLS session caches, the guard's admission worker) on every case before
    // measuring any: otherwise whichever case runs first pays for it (seen: 0.86x first, 0.95x second).
    for (const [i, c] of cases.entries()) {
      const warmFile = path.join(dir, `warm-${i}.json`);
      writeFileSync(warmFile, JSON.stringify(c.review));
      for (const server of [floor, serve]) {
        await runLoadgen(
          {
            url: `${server.url}/mutate`,
            caFile: tls.caFile,
            bodyFile: warmFile,
            concurrency: settings.concurrency,
            durationMs: 500,
            warmupMs: 0,
            maxRequests: 50_000,
          },
          dir,
          `warm-${i}`,
        );
      }
    }
    for (const c of cases) {
      const bodyFile = path.join(dir, `body-${rows.length}.json`);
      const body = JSON.stringify(c.review);
      writeFileSync(bodyFile, body);
      const base: Omit<LoadConfig, 'url'> = {
        caFile: tls.caFile,
        bodyFile,
        concurrency: settings.concurrency,
        durationMs: settings.durationMs / settings.rounds,
        warmupMs: settings.warmupMs,
        maxRequests: Math.ceil(500_000 / settings.rounds),
      };
      const runs = { floor: [] as Measured[], guard: [] as Measured[] };
      const measure = async (who: 'floor' | 'guard', round: number): Promise<void> => {
        const pid = (who === 'floor' ? floor : serve).child.pid!;
        const cpuBefore = cpuMs(pid);
        const result = await runLoadgen(
          { ...base, url: `${(who === 'floor' ? floor : serve).url}/mutate` },
          dir,
          `${who}-${c.name}-${round}`,
        );
        runs[who].push({ result, cpuMs: cpuMs(pid) - cpuBefore });
        if (result.errors > 0)
          throw new Error(`${c.name} (${who}): ${result.errors} failed requests, first: ${result.firstError}`);
      };
      for (let round = 0; round < settings.rounds; round++) {
        for (const who of round % 2 === 0 ? (['floor', 'guard'] as const) : (['guard', 'floor'] as const))
          await measure(who, round);
      }
      const sample = checkSample(c, runs.guard[0]!.result.sample);
      const roundRatios = runs.guard.map((g, i) => g.result.requestsPerSec / runs.floor[i]!.result.requestsPerSec);
      rows.push({
        name: c.name,
        bodyBytes: Buffer.byteLength(body),
        floor: merge(runs.floor.map((r) => r.result)),
        guard: merge(runs.guard.map((r) => r.result)),
        guardCpuUsPerRequest: cpuUsPerRequest(runs.guard, base),
        floorCpuUsPerRequest: cpuUsPerRequest(runs.floor, base),
        ratio: median(roundRatios),
        roundRatios,
        ...sample,
      });
      const row = rows[rows.length - 1]!;
      log(
        `  ${c.name}: guard ${row.guard.requestsPerSec.toFixed(0)} req/s, floor ${row.floor.requestsPerSec.toFixed(0)} req/s, ratio per round ${roundRatios.map((r) => r.toFixed(2)).join(' ')}`,
      );
    }
    return { settings, rows, serveRssAfterBytes: rssBytes(serve.child.pid!), serveRssIdleBytes };
  } finally {
    await floor.stop();
    await serve.stop();
    await cluster.stop();
  }
}
