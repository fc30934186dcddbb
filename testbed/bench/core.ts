// Section 2: the pure core in-process — JSON.parse, decide() and the full reviewAdmission()
// (validation + release lookup + decide + response) per AdmissionReview, over a corpus of the
// requests a cluster with Airflow releases sends, with release state as the watch caches give it.
import { performance } from 'node:perf_hooks';
import { parseAdmissionReview, type AdmissionRequest } from '../../src/core/admission.js';
import { parseGuardConfig, type GuardConfig } from '../../src/core/config.js';
import { decide, type ReleaseState } from '../../src/core/decide.js';
import { reviewAdmission } from '../../src/core/review.js';
import {
  projectPod,
  projectWorkload,
  releaseKeyOf,
  releaseStateFrom,
  ReleaseStateCache,
  type PodRecord,
  type ReleaseRecords,
  type WorkloadRecord,
} from '../../src/coordinator/release-view.js';
import type { WorkloadKind } from '../../src/core/objects.js';
import {
  admissionCases,
  admissionReview,
  BENCH_NAMESPACE,
  chartComponent,
  chartWorkload,
  nginxDeployment,
  releaseWorkloads,
  versionChange,
} from './fixtures.js';
import { GUARD_USER } from '../start.js';
import { summarise, type LatencySummary } from './stats.js';

type Json = Record<string, unknown>;

export interface CoreRow {
  name: string;
  reviews: number;
  parseUs: LatencySummary;
  decideUs: LatencySummary;
  reviewUs: LatencySummary;
}

export interface CoreReport {
  rows: CoreRow[];
  /** releaseStateFrom() scanning every cached record of `releases` releases (the path before the release index). */
  stateLookupUs: LatencySummary;
  /** releaseStateFrom() over one release's records from the release index (a cache miss). */
  indexedLookupUs: LatencySummary;
  /** ReleaseStateCache.get() with the release's records unchanged: what admission pays per request. */
  cachedLookupUs: LatencySummary;
  releases: number;
  decisions: Record<string, number>;
}

/** The requests a cluster sends the webhook: upgrades, scale changes, installs, hooks, other apps. */
export function realisticCorpus(namespace: string): Json[] {
  const corpus: Json[] = admissionCases(namespace)
    .filter((c) => c.name !== '1.5 MB object')
    .map((c) => c.review);
  const components = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker'];
  for (const component of components) {
    const base = { kind: 'Deployment' as const, component, release: 'current', namespace };
    corpus.push(versionChange({ ...base, release: 'older' }, '3.0.2', '3.1.0'));
    corpus.push(versionChange(base, '3.1.0', '3.0.2', { client: 'kubectl-set' }));
    corpus.push(versionChange(base, '3.1.0', '3.1.7'));
    corpus.push(
      admissionReview({ operation: 'CREATE', object: chartComponent({ ...base, release: 'fresh', version: '3.1.0' }) }),
    );
    corpus.push(
      admissionReview({
        operation: 'UPDATE',
        oldObject: chartWorkload({ ...base, version: '3.1.0', stored: true }),
        object: chartWorkload({ ...base, version: '3.1.0', stored: true, replicas: 3 }),
        client: 'kubectl-apply',
      }),
    );
  }
  corpus.push(
    admissionReview({
      operation: 'CREATE',
      object: chartWorkload({
        kind: 'Job',
        component: 'run-airflow-migrations',
        release: 'current',
        namespace,
        version: '3.0.2',
      }),
    }),
  );
  corpus.push(
    admissionReview({
      operation: 'CREATE',
      object: chartWorkload({
        kind: 'Job',
        component: 'run-airflow-migrations',
        release: 'older',
        namespace,
        version: '3.1.0',
      }),
    }),
  );
  corpus.push(
    versionChange({ kind: 'CronJob', component: 'database-cleanup', release: 'current', namespace }, '3.1.0', '3.0.2'),
  );
  corpus.push(
    versionChange({ kind: 'StatefulSet', component: 'worker', release: 'current', namespace }, '3.1.0', '3.1.0'),
  );
  corpus.push(
    versionChange(
      {
        kind: 'Deployment',
        component: 'statsd',
        release: 'current',
        namespace,
        image: 'quay.io/prometheus/statsd-exporter:v0.28.0',
      },
      '3.1.0',
      '3.1.0',
    ),
  );
  corpus.push(
    versionChange({ kind: 'Deployment', component: 'scheduler', release: 'current', namespace }, '3.1.0', '3.0.2', {
      client: { username: GUARD_USER },
    }),
  );
  corpus.push(
    admissionReview({
      operation: 'UPDATE',
      oldObject: nginxDeployment(namespace),
      object: nginxDeployment(namespace),
      subResource: 'status',
    }),
  );
  corpus.push(admissionReview({ operation: 'CREATE', object: nginxDeployment('shop') }));
  return corpus;
}

/** Cached records of `releases` releases (the first two are 'current' at 3.1.0 and 'older' at 3.0.2). */
export function cachedRecords(
  config: GuardConfig,
  releases: number,
): { workloads: WorkloadRecord[]; pods: PodRecord[] } {
  const workloads: WorkloadRecord[] = [];
  const pods: PodRecord[] = [];
  for (let i = 0; i < releases; i++) {
    const [namespace, release, version] =
      i === 0
        ? [BENCH_NAMESPACE, 'current', '3.1.0']
        : i === 1
          ? [BENCH_NAMESPACE, 'older', '3.0.2']
          : [`tenant-${i % 10}`, `airflow-${i}`, i % 2 ? '3.0.2' : '3.1.0'];
    for (const obj of releaseWorkloads(release, namespace, version)) {
      const meta = obj.metadata as { resourceVersion?: string };
      meta.resourceVersion = String(1000 + workloads.length);
      const rec = projectWorkload(obj.kind as WorkloadKind, obj, config);
      if (rec) workloads.push(rec);
      if (obj.kind === 'Deployment') {
        const template = (obj.spec as { template: { metadata: Json; spec: Json } }).template;
        const pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { ...template.metadata, name: `${String((obj.metadata as Json).name)}-abc12`, namespace },
          spec: template.spec,
          status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
        };
        const p = projectPod(pod, config);
        if (p) pods.push(p);
      }
    }
  }
  return { workloads, pods };
}

function timeEach<T>(inputs: T[], fn: (input: T) => unknown, minRounds: number, budgetMs: number): number[] {
  const samples: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let round = 0; round < minRounds || performance.now() < deadline; round++) {
    for (const input of inputs) {
      const t = process.hrtime.bigint();
      fn(input);
      samples.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    if (round > 100_000) break;
  }
  return samples;
}

function measureSet(
  name: string,
  reviews: Json[],
  stateFor: (ns: string, rel: string) => ReleaseState,
  config: GuardConfig,
  budgetMs: number,
): CoreRow {
  const bodies = reviews.map((r) => JSON.stringify(r));
  const parsed = bodies.map((b) => JSON.parse(b) as unknown);
  const requests: Array<{ request: AdmissionRequest; state: ReleaseState }> = parsed.map((p) => {
    const request = parseAdmissionReview(p);
    const release = reviewAdmission(p, stateFor, config).decision.subject.release;
    return { request, state: release ? stateFor(request.namespace, release) : {} };
  });
  const rounds = Math.max(3, Math.ceil(2000 / reviews.length));
  // Warm up every path before timing.
  for (let i = 0; i < rounds; i++) for (const p of parsed) reviewAdmission(p, stateFor, config);
  return {
    name,
    reviews: reviews.length,
    parseUs: summarise(timeEach(bodies, (b) => JSON.parse(b), rounds, budgetMs / 3)),
    decideUs: summarise(
      timeEach(requests, ({ request, state }) => decide(request, state, config), rounds, budgetMs / 3),
    ),
    reviewUs: summarise(timeEach(parsed, (p) => reviewAdmission(p, stateFor, config), rounds, budgetMs / 3)),
  };
}

export function runCoreBench(releases: number, budgetMs: number): CoreReport {
  const config = parseGuardConfig({ trustedUsernames: [GUARD_USER] });
  const { workloads, pods } = cachedRecords(config, releases);
  const states = new Map<string, ReleaseState>();
  const lookup = (ns: string, rel: string): ReleaseState =>
    releaseStateFrom(ns, rel, workloads, pods, undefined, undefined);
  const stateFor = (ns: string, rel: string): ReleaseState => {
    const key = `${ns}/${rel}`;
    let s = states.get(key);
    if (!s) states.set(key, (s = lookup(ns, rel)));
    return s;
  };
  const rows: CoreRow[] = [];
  for (const c of admissionCases(BENCH_NAMESPACE))
    rows.push(measureSet(c.name, [c.review], stateFor, config, c.name === '1.5 MB object' ? budgetMs : budgetMs / 2));
  const corpus = realisticCorpus(BENCH_NAMESPACE);
  rows.push(measureSet(`corpus (${corpus.length} reviews)`, corpus, stateFor, config, budgetMs));
  const decisions: Record<string, number> = {};
  for (const r of corpus) {
    const kind = reviewAdmission(r, stateFor, config).decision.kind;
    decisions[kind] = (decisions[kind] ?? 0) + 1;
  }
  const names: Array<[string, string]> = [
    [BENCH_NAMESPACE, 'current'],
    [BENCH_NAMESPACE, 'older'],
    ...Array.from({ length: Math.max(0, releases - 2) }, (_, i): [string, string] => [
      `tenant-${(i + 2) % 10}`,
      `airflow-${i + 2}`,
    ]),
  ];
  const stateLookupUs = summarise(timeEach(names, ([ns, rel]) => lookup(ns, rel), 5, budgetMs / 3));
  const byRelease = { workloads: indexed(workloads), pods: indexed(pods) };
  const indexedLookupUs = summarise(
    timeEach(
      names,
      ([ns, rel]) =>
        releaseStateFrom(
          ns,
          rel,
          byRelease.workloads.group(`${ns}/${rel}`),
          byRelease.pods.group(`${ns}/${rel}`),
          undefined,
          undefined,
        ),
      5,
      budgetMs / 3,
    ),
  );
  const cache = new ReleaseStateCache(() => ({ workloads: [byRelease.workloads], pods: byRelease.pods }));
  const cachedLookupUs = summarise(
    timeEach(names, ([ns, rel]) => cache.get(ns, rel, undefined, undefined), 5, budgetMs / 3),
  );
  return { rows, stateLookupUs, indexedLookupUs, cachedLookupUs, releases, decisions };
}

/** The release index as WatchCache keeps it (groupBy: releaseKeyOf), for records that do not change. */
function indexed<T extends { namespace: string; release: string }>(records: T[]): ReleaseRecords<T> {
  const groups = new Map<string, T[]>();
  for (const r of records) {
    const key = releaseKeyOf(r);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return { group: (key) => groups.get(key) ?? [], groupRevision: (key) => (groups.has(key) ? 1 : 0) };
}
