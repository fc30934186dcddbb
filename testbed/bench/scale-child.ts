// Section 4, one measurement in a fresh process (run with --expose-gc): N releases written straight
// into a simulated API server's store, then the real Coordinator lists and watches them. The heap
// and RSS growth from before the Coordinator starts to after its caches are synced is its cost.
//
//   node --expose-gc dist-testbed/testbed/bench/scale-child.js <releases>
import { performance } from 'node:perf_hooks';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { DEFAULT_COORDINATOR_OPTIONS } from '../../src/coordinator/options.js';
import { parseGuardConfig } from '../../src/core/config.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { createExecRunner } from '../../src/k8s/exec.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../../src/log/logger.js';
import { startSimCluster } from '../sim/cluster.js';
import { seedRelease } from './cluster.js';
import { waitUntil } from './processes.js';
import { GUARD_USER } from '../start.js';
import { summarise, type LatencySummary } from './stats.js';

export interface ScaleSample {
  releases: number;
  workloads: number;
  pods: number;
  heapDeltaBytes: number;
  rssDeltaBytes: number;
  /** Time from start() to every cache synced. */
  syncMs: number;
  /** Coordinator.releaseState() — what each Airflow admission request looks up. */
  releaseStateUs: LatencySummary;
}

function settle(): { heap: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

export async function measureScale(releases: number): Promise<ScaleSample> {
  const sim = await startSimCluster();
  await sim.controllers.stop(); // store only: nothing runs in the seeded pods
  const names: Array<[string, string]> = [];
  for (let i = 0; i < releases; i++) {
    const ns = `team-${Math.floor(i / 10)}`;
    const release = `airflow-${i}`;
    seedRelease(sim, ns, release, i % 3 === 0 ? '3.0.2' : '3.1.0');
    names.push([ns, release]);
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sim.api.kubeconfig());
  const rest = new KubeRest(kubeConfig);
  await new Promise((r) => setTimeout(r, 200));
  const before = settle();
  const coordinator = new Coordinator(
    {
      ...DEFAULT_COORDINATOR_OPTIONS,
      config: parseGuardConfig({ trustedUsernames: [GUARD_USER] }),
      identity: 'bench-scale',
    },
    { kubeConfig, rest, cluster: new Cluster(rest), exec: createExecRunner(kubeConfig), logger: silentLogger() },
  );
  const started = performance.now();
  coordinator.start();
  await waitUntil('caches synced', () => coordinator.ready, 60_000, 10);
  const syncMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 500)); // let list buffers and watch setup settle
  const after = settle();
  const samples: number[] = [];
  if (names.length > 0) {
    for (let i = 0; i < 2000; i++) {
      const [ns, rel] = names[(i * 7919) % names.length]!;
      const t = performance.now();
      coordinator.releaseState(ns, rel);
      samples.push((performance.now() - t) * 1000);
    }
  }
  const workloads = [...coordinator.workloads.values()].reduce((n, c) => n + c.size, 0);
  const pods = coordinator.pods.size;
  await coordinator.stop();
  rest.close();
  await sim.stop();
  return {
    releases,
    workloads,
    pods,
    heapDeltaBytes: after.heap - before.heap,
    rssDeltaBytes: after.rss - before.rss,
    syncMs,
    releaseStateUs: summarise(samples.slice(200)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const releases = Number(process.argv[2]);
  if (!Number.isInteger(releases) || releases < 0) {
    process.stderr.write('usage: scale-child <releases>\n');
    process.exit(2);
  }
  measureScale(releases).then(
    (sample) => {
      process.stdout.write(`${JSON.stringify(sample)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`scale measurement failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
