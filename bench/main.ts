// `npm run bench`: admission speed against the floor, in-process decision cost, coordinator
// overhead, and memory per watched release — printed as tables with the targets they are held to.
//
//   node dist/bench/main.js [--only admission,core,coordinator,scale] [--quick] [--profile DIR] [--json FILE]
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { runAdmissionBench, type AdmissionReport } from './admission.js';
import { tempDir } from './cluster.js';
import { runCoordinatorBench, type CoordinatorReport } from './coordinator.js';
import { runCoreBench, type CoreReport } from './core.js';
import { startBenchPostgres } from './postgres.js';
import { runScaleBench, type ScaleReport } from './scale.js';
import { fmt, mb, table } from './stats.js';

const SECTIONS = ['admission', 'core', 'coordinator', 'scale'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  only?: string;
  quick?: boolean;
  profile?: string;
  json?: string;
  cases?: string;
  nodeFlags?: string;
}

interface Target {
  target: string;
  met: boolean;
  figures: string;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function admissionTable(r: AdmissionReport): string {
  const rows = r.rows.map((row) => [
    row.name,
    `${(row.bodyBytes / 1024).toFixed(row.bodyBytes > 100_000 ? 0 : 1)} KB`,
    fmt(row.floor.requestsPerSec, 0),
    fmt(row.guard.requestsPerSec, 0),
    `${fmt(row.ratio, 2)} (${fmt(Math.min(...row.roundRatios), 2)}–${fmt(Math.max(...row.roundRatios), 2)})`,
    `${fmt(row.floor.latencyMs.p50, 2)} / ${fmt(row.floor.latencyMs.p99, 2)} / ${fmt(row.floor.latencyMs.max, 1)}`,
    `${fmt(row.guard.latencyMs.p50, 2)} / ${fmt(row.guard.latencyMs.p99, 2)} / ${fmt(row.guard.latencyMs.max, 1)}`,
    `${fmt(row.floorCpuUsPerRequest, 0)} / ${fmt(row.guardCpuUsPerRequest, 0)}`,
  ]);
  const t = table(['case', 'body', 'floor req/s', 'guard req/s', 'ratio (rounds)', 'floor p50/p99/max ms', 'guard p50/p99/max ms', 'CPU µs/req floor / guard'], rows);
  return `${t.text}\nserve RSS: ${mb(r.serveRssIdleBytes)} idle, ${mb(r.serveRssAfterBytes)} after the run (${r.settings.releases} releases watched; concurrency ${r.settings.concurrency}; per case ${r.settings.rounds} rounds of floor and guard alternating, ${r.settings.durationMs / r.settings.rounds / 1000} s measured each after ${r.settings.warmupMs / 1000} s warm-up; ratio = median of the rounds' ratios, range in brackets)`;
}

function coreTable(r: CoreReport, admission?: AdmissionReport): string {
  const cpu = new Map(admission?.rows.map((row) => [row.name, row.guardCpuUsPerRequest]));
  const rows = r.rows.map((row) => {
    const perRequest = cpu.get(row.name);
    const core = row.reviewUs.mean;
    return [
      row.name,
      `${fmt(row.parseUs.p50, 1)} / ${fmt(row.parseUs.p99, 1)}`,
      `${fmt(row.decideUs.p50, 1)} / ${fmt(row.decideUs.p99, 1)}`,
      `${fmt(row.reviewUs.p50, 1)} / ${fmt(row.reviewUs.p99, 1)}`,
      perRequest ? `${fmt((100 * core) / perRequest, 1)} %` : '-',
    ];
  });
  const t = table(['reviews', 'JSON.parse µs p50/p99', 'decide() µs p50/p99', 'reviewAdmission() µs p50/p99', 'core share of serve CPU/req'], rows);
  const decisions = Object.entries(r.decisions).map(([k, v]) => `${k} ${v}`).join(', ');
  return `${t.text}\ncorpus decisions: ${decisions}\nrelease state lookup, ${r.releases} cached releases: ReleaseStateCache (what admission does) p50 ${fmt(r.cachedLookupUs.p50, 2)} µs, p99 ${fmt(r.cachedLookupUs.p99, 2)} µs; on a change, releaseStateFrom over the release's records p50 ${fmt(r.indexedLookupUs.p50, 1)} µs, p99 ${fmt(r.indexedLookupUs.p99, 1)} µs; scanning every cached record (before the index) p50 ${fmt(r.stateLookupUs.p50, 1)} µs, p99 ${fmt(r.stateLookupUs.p99, 1)} µs`;
}

function coordinatorTable(r: CoordinatorReport): string {
  const rows = r.results.map((res) => {
    const med = (f: (o: (typeof res.operations)[number]) => number): string => fmt([...res.operations.map(f)].sort((a, b) => a - b)[Math.floor((res.operations.length - 1) / 2)], 0);
    return [
      String(res.releases),
      med((o) => o.totalMs),
      med((o) => o.execMs),
      med((o) => o.terminationMs),
      med((o) => o.podStartMs),
      med((o) => o.execWaitMs),
      fmt(res.medianOverheadMs, 0),
      fmt(res.maxOverheadMs, 0),
      fmt(res.wallMs, 0),
      `${fmt(res.simCpu, 2)} / ${fmt(res.serveCpu, 2)}`,
    ];
  });
  const t = table(['concurrent ops', 'total ms', 'exec ms', 'pod termination ms', 'pod start ms', 'exec-slot wait ms', 'overhead ms (median)', 'overhead ms (max)', 'wall ms', 'cores busy sim / serve'], rows);
  const gapRows = r.results.map((res) => {
    const keys = ['open', 'toExec', 'verify', 'drain', 'release', 'start'] as const;
    return [String(res.releases), ...keys.map((k) => fmt([...res.operations.map((o) => o.gaps[k])].sort((a, b) => a - b)[Math.floor((res.operations.length - 1) / 2)], 0))];
  });
  const g = table(['concurrent ops', 'admission->opened', 'opened->exec', 'exec->verified', 'drain (less termination)', 'drained->done', 'done->ready (less pod start)'], gapRows);
  let text = `${t.text}\n(medians per operation; --max-concurrent-execs ${r.maxConcurrentExecs}; overhead = total - exec - termination - start - exec-slot wait)\n\nwhere the overhead sits (median ms):\n${g.text}`;
  if (r.probeIdle && r.probeBusy) {
    const p = table(
      ['admission probe', 'req/s', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['idle', fmt(r.probeIdle.requestsPerSec, 0), fmt(r.probeIdle.latencyMs.p50, 2), fmt(r.probeIdle.latencyMs.p99, 2), fmt(r.probeIdle.latencyMs.max, 1)],
        [`during ${r.results[r.results.length - 1]?.releases} downgrades`, fmt(r.probeBusy.requestsPerSec, 0), fmt(r.probeBusy.latencyMs.p50, 2), fmt(r.probeBusy.latencyMs.p99, 2), fmt(r.probeBusy.latencyMs.max, 1)],
        ...(r.floorIdle && r.floorBusy
          ? [
              ['floor (bare server), idle', fmt(r.floorIdle.requestsPerSec, 0), fmt(r.floorIdle.latencyMs.p50, 2), fmt(r.floorIdle.latencyMs.p99, 2), fmt(r.floorIdle.latencyMs.max, 1)],
              ['floor, same moments', fmt(r.floorBusy.requestsPerSec, 0), fmt(r.floorBusy.latencyMs.p50, 2), fmt(r.floorBusy.latencyMs.p99, 2), fmt(r.floorBusy.latencyMs.max, 1)],
            ]
          : []),
      ],
    );
    text += `\n\n${p.text}`;
  }
  return text;
}

function scaleTable(r: ScaleReport): string {
  const per = new Map(r.perReleaseHeapBytes.map((p) => [p.releases, p]));
  const rows = r.samples.map((s) => [
    String(s.releases),
    String(s.workloads),
    String(s.pods),
    `${(s.heapDeltaBytes / 1024).toFixed(0)} KB`,
    `${(s.rssDeltaBytes / 1024 / 1024).toFixed(1)} MB`,
    per.get(s.releases) ? `${(per.get(s.releases)!.bytes / 1024).toFixed(1)} KB` : '-',
    fmt(s.syncMs, 0),
    s.releases ? `${fmt(s.releaseStateUs.p50, 1)} / ${fmt(s.releaseStateUs.p99, 1)}` : '-',
  ]);
  return table(['releases', 'workloads', 'pods', 'heap delta', 'RSS delta', 'heap per release', 'sync ms', 'releaseState() µs p50/p99'], rows).text;
}

function targets(a?: AdmissionReport, c?: CoreReport, co?: CoordinatorReport, s?: ScaleReport): Target[] {
  const out: Target[] = [];
  if (a) {
    for (const name of ['pass-through', 'no-change']) {
      const row = a.rows.find((r) => r.name === name);
      if (row) out.push({ target: `${name} throughput >= 0.9x floor`, met: row.ratio >= 0.9, figures: `${fmt(row.ratio, 2)}x (${fmt(row.guard.requestsPerSec, 0)} vs ${fmt(row.floor.requestsPerSec, 0)} req/s)` });
    }
  }
  if (c) {
    const corpus = c.rows[c.rows.length - 1]!;
    out.push({ target: 'in-process decision p99 < 50 µs', met: corpus.decideUs.p99 < 50, figures: `decide() p99 ${fmt(corpus.decideUs.p99, 1)} µs; full reviewAdmission() p99 ${fmt(corpus.reviewUs.p99, 1)} µs (${corpus.name})` });
  }
  if (co && co.results.length) {
    const worst = Math.max(...co.results.map((r) => r.medianOverheadMs));
    const figures = co.results.map((r) => `${r.releases}: ${fmt(r.medianOverheadMs, 0)} ms (max ${fmt(r.maxOverheadMs, 0)})`).join(', ');
    out.push({ target: 'coordinator overhead < 1 s per operation, flat with concurrency', met: worst < 1000, figures: `median overhead by concurrency ${figures}` });
    if (co.probeIdle && co.probeBusy) {
      const ratio = co.probeBusy.latencyMs.p99 / co.probeIdle.latencyMs.p99;
      const floorRatio = co.floorIdle && co.floorBusy ? co.floorBusy.latencyMs.p99 / co.floorIdle.latencyMs.p99 : undefined;
      const machine = floorRatio !== undefined ? `; a bare server on the same machine at the same moments: ${fmt(floorRatio, 2)}x` : '';
      out.push({ target: 'admission p99 during 20 operations <= 1.2x idle', met: ratio <= 1.2, figures: `${fmt(co.probeBusy.latencyMs.p99, 2)} ms vs ${fmt(co.probeIdle.latencyMs.p99, 2)} ms idle (${fmt(ratio, 2)}x)${machine}` });
    }
  }
  if (s && s.perReleaseHeapBytes.length) {
    const per = s.perReleaseHeapBytes;
    const max = Math.max(...per.map((p) => p.bytes));
    const min = Math.min(...per.map((p) => p.bytes));
    const linear = max <= min * 1.25;
    out.push({ target: 'memory linear, < 50 KB per watched release', met: max < 50 * 1024 && linear, figures: per.map((p) => `${p.releases}: ${(p.bytes / 1024).toFixed(1)} KB/release heap`).join(', ') + (linear ? ' (linear within 25%)' : ' (NOT linear)') });
  }
  return out;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('bench')
    .option('--only <sections>', `comma-separated subset of ${SECTIONS.join(',')}`)
    .option('--quick', 'shorter runs (a smoke test of the benchmark itself)')
    .option('--profile <dir>', 'write CPU profiles of the serve processes to this directory (node --cpu-prof)')
    .option('--json <file>', 'also write all figures as JSON')
    .option('--node-flags <flags>', 'extra node flags for the serve processes (space-separated, e.g. "--trace-gc")')
    .option('--cases <names>', 'admission cases to run (comma-separated names, e.g. "no-change,pass-through")')
    .parse();
  const opts = program.opts<Options>();
  const only = new Set<Section>((opts.only ? opts.only.split(',').map((s) => s.trim()) : SECTIONS) as Section[]);
  for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`unknown section '${s}' (expected ${SECTIONS.join(', ')})`);
  const quick = Boolean(opts.quick);
  const extraFlags = opts.nodeFlags ? opts.nodeFlags.split(/\s+/).filter(Boolean) : [];
  const profileFlags = opts.profile ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opts.profile)] : [];
  const nodeFlags = extraFlags.length + profileFlags.length > 0 ? [...profileFlags, ...extraFlags] : undefined;
  if (opts.profile) mkdirSync(opts.profile, { recursive: true });
  const dir = tempDir('adg-bench-');
  const started = Date.now();
  log(`airflow-downgrade-guard benchmark (node ${process.version}, work dir ${dir})`);

  let admission: AdmissionReport | undefined;
  let core: CoreReport | undefined;
  let coordinator: CoordinatorReport | undefined;
  let scale: ScaleReport | undefined;
  const out: string[] = [];

  if (only.has('admission')) {
    log('1. admission: serve vs floor');
    admission = await runAdmissionBench(dir, { concurrency: 8, durationMs: quick ? 1000 : 4500, warmupMs: quick ? 300 : 500, rounds: quick ? 1 : 3, releases: 50, ...(nodeFlags ? { nodeFlags } : {}), ...(opts.cases ? { cases: opts.cases.split(',').map((c) => c.trim()) } : {}) }, log);
    out.push(`## 1. Admission throughput and latency (serve vs floor, HTTPS keep-alive)\n\n${admissionTable(admission)}`);
  }
  if (only.has('core')) {
    log('2. in-process decision cost');
    core = runCoreBench(50, quick ? 600 : 2000);
    out.push(`## 2. In-process decision cost (pure core, ${core.releases} releases cached)\n\n${coreTable(core, admission)}`);
  }
  if (only.has('coordinator')) {
    log('3. coordinator overhead (simulated cluster + Postgres + serve)');
    const pg = await startBenchPostgres();
    try {
      coordinator = await runCoordinatorBench(dir, pg, {
        concurrency: quick ? [1, 4] : [1, 10, 20],
        maxConcurrentExecs: 4,
        probe: { concurrency: 2, ratePerWorker: 50, durationMs: quick ? 3000 : 6000 },
        ...(nodeFlags ? { nodeFlags } : {}),
      }, log);
    } finally {
      await pg.stop();
    }
    out.push(`## 3. Coordinator overhead, downgrade 3.1.0 -> 3.0.2\n\n${coordinatorTable(coordinator)}`);
  }
  if (only.has('scale')) {
    log('4. scale: memory per watched release');
    scale = await runScaleBench(quick ? [50, 100] : [100, 500], log);
    out.push(`## 4. Scale: Coordinator watch caches (7 workloads + 6 pods per release)\n\n${scaleTable(scale)}`);
  }

  const t = targets(admission, core, coordinator, scale);
  const summary = table(['target', 'met', 'figures'], t.map((x) => [x.target, x.met ? 'yes' : 'NO', x.figures]));
  out.push(`## Targets\n\n${summary.text}`);
  process.stdout.write(`\n${out.join('\n\n')}\n\nfinished in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ admission, core, coordinator, scale, targets: t }, null, 2));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
