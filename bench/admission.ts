// Section 1: admission throughput and latency of the real `serve` process against the floor (a
// bare HTTPS server parsing the same JSON), each a separate process, driven by a separate load
// generator process over HTTPS with keep-alive.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { admissionCases, BENCH_NAMESPACE, type AdmissionCase } from './fixtures.js';
import { seedRelease, startBenchCluster, makeTls } from './cluster.js';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { cpuMs, rssBytes, runLoadgen, startFloor, startServe } from './processes.js';

export interface AdmissionSettings {
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /** Releases the guard watches while it answers (their state is what it looks up). */
  releases: number;
  nodeFlags?: string[];
  /** Only these cases (by name); all when empty. */
  cases?: string[];
}

export interface AdmissionRow {
  name: string;
  bodyBytes: number;
  floor: LoadResult;
  guard: LoadResult;
  /** CPU time of the serve process per request (µs). */
  guardCpuUsPerRequest: number;
  /** CPU time of the floor process per request (µs). */
  floorCpuUsPerRequest: number;
  ratio: number;
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

export async function runAdmissionBench(dir: string, settings: AdmissionSettings, log: (line: string) => void): Promise<AdmissionReport> {
  const tls = makeTls(dir);
  const cluster = await startBenchCluster(dir);
  // Only the store matters here: no controllers turning the seeded objects into running containers.
  await cluster.sim.controllers.stop();
  seedRelease(cluster.sim, BENCH_NAMESPACE, 'current', '3.1.0');
  seedRelease(cluster.sim, BENCH_NAMESPACE, 'older', '3.0.2');
  for (let i = 2; i < settings.releases; i++) seedRelease(cluster.sim, `tenant-${i % 10}`, `airflow-${i}`, i % 2 ? '3.0.2' : '3.1.0');

  const serve = await startServe({ tls, kubeconfig: cluster.guardKubeconfig, logFile: path.join(dir, 'serve-admission.log'), ...(settings.nodeFlags ? { nodeFlags: settings.nodeFlags } : {}) });
  const floor = await startFloor(tls);
  const rows: AdmissionRow[] = [];
  let serveRssIdleBytes = Number.NaN;
  try {
    serveRssIdleBytes = rssBytes(serve.child.pid!);
    const cases = admissionCases(BENCH_NAMESPACE).filter((c) => !settings.cases?.length || settings.cases.includes(c.name));
    for (const c of cases) {
      const bodyFile = path.join(dir, `body-${rows.length}.json`);
      const body = JSON.stringify(c.review);
      writeFileSync(bodyFile, body);
      const base: Omit<LoadConfig, 'url'> = {
        caFile: tls.caFile,
        bodyFile,
        concurrency: settings.concurrency,
        durationMs: settings.durationMs,
        warmupMs: settings.warmupMs,
        maxRequests: 500_000,
      };
      const floorCpuBefore = cpuMs(floor.child.pid!);
      const floorResult = await runLoadgen({ ...base, url: `${floor.url}/mutate` }, dir, `floor-${c.name}`);
      const floorCpuAfter = cpuMs(floor.child.pid!);
      const cpuBefore = cpuMs(serve.child.pid!);
      const guardResult = await runLoadgen({ ...base, url: `${serve.url}/mutate` }, dir, `guard-${c.name}`);
      const cpuAfter = cpuMs(serve.child.pid!);
      for (const [who, r] of [['floor', floorResult], ['guard', guardResult]] as const) {
        if (r.errors > 0) throw new Error(`${c.name} (${who}): ${r.errors} failed requests, first: ${r.firstError}`);
      }
      const sample = checkSample(c, guardResult.sample);
      // Warm-up requests are not timed but use CPU too; count them by the measured rate.
      const inRun = (r: LoadResult): number => r.requestsPerSec * ((settings.durationMs + settings.warmupMs) / 1000);
      rows.push({
        name: c.name,
        bodyBytes: Buffer.byteLength(body),
        floor: floorResult,
        guard: guardResult,
        guardCpuUsPerRequest: ((cpuAfter - cpuBefore) * 1000) / inRun(guardResult),
        floorCpuUsPerRequest: ((floorCpuAfter - floorCpuBefore) * 1000) / inRun(floorResult),
        ratio: guardResult.requestsPerSec / floorResult.requestsPerSec,
        ...sample,
      });
      log(`  ${c.name}: guard ${guardResult.requestsPerSec.toFixed(0)} req/s, floor ${floorResult.requestsPerSec.toFixed(0)} req/s`);
    }
    return { settings, rows, serveRssAfterBytes: rssBytes(serve.child.pid!), serveRssIdleBytes };
  } finally {
    await floor.stop();
    await serve.stop();
    await cluster.stop();
  }
}
