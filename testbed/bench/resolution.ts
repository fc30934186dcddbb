// Section 6: how long resolving an image's Airflow version takes (issue 14), on each path the guard
// has: a resolution-cache hit at admission (decide() with ReleaseState.imageVersions, in process),
// the coordinator's ImageResolver reading the image's labels from a real registry (Debian's
// docker-registry, ./oci-registry.ts) on a cache miss, and its probe pod in the simulated cluster
// (`airflow version` exec'd in a pod made from the held template; the registry unreachable).
import pino from 'pino';
import { ImageResolver, type ImageUse } from '../../src/coordinator/image-resolver.js';
import { parseAdmissionReview } from '../../src/core/admission.js';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { decide, type ReleaseState } from '../../src/core/decide.js';
import { ResolutionCache } from '../../src/core/resolution-cache.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { createExecRunner } from '../../src/k8s/exec.js';
import { KubeRest, loadKubeConfig } from '../../src/k8s/rest.js';
import { registryAvailable, REGISTRY_BINARY, startRegistry } from '../oci-registry.js';
import { DEFAULT_IMAGE_CATALOG } from '../sim/airflow/index.js';
import { startTestbed } from '../start.js';
import { ensureNamespace } from './cluster.js';
import { admissionReview, chartWorkload } from './fixtures.js';
import { summarise, type LatencySummary } from './stats.js';

export interface ResolutionRow {
  path: string;
  /** Milliseconds (the admission row: microseconds, see `unit`). */
  latency: LatencySummary;
  unit: 'µs' | 'ms';
  note: string;
}

export interface ResolutionReport {
  rows: ResolutionRow[];
  /** Why a path was not measured (e.g. no docker-registry binary). */
  skipped: string[];
}

const LABEL = 'org.apache.airflow.version';
const NAMESPACE = 'bench-resolve';
const silent = pino({ level: 'silent' });

/** decide() on a change to a private tag: its version from the cache (hit), or a hold (miss). */
function admissionRows(iterations: number): ResolutionRow[] {
  const image = (tag: string) => `registry.corp.invalid/catalog-airflow-airflow:${tag}`;
  const base = { kind: 'Deployment' as const, component: 'scheduler', release: 'airflow', namespace: NAMESPACE };
  const request = parseAdmissionReview(
    admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...base, image: image('build-4711'), stored: true }),
      object: chartWorkload({ ...base, image: image('build-4712'), stored: true }),
    }),
  );
  const upstream = parseAdmissionReview(
    admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...base, version: '2.9.3', stored: true }),
      object: chartWorkload({ ...base, version: '2.8.4', stored: true }),
    }),
  );
  const hit: ReleaseState = { imageVersions: { [image('build-4711')]: '2.9.3', [image('build-4712')]: '2.8.4' } };
  const miss: ReleaseState = { runningVersion: '2.9.3' };
  const rows: ResolutionRow[] = [];
  for (const [name, review, state, expected] of [
    ['admission, tag names the version (no resolution; for comparison)', upstream, {}, 'downgrade'],
    ['admission, cache hit (decide(), in process)', request, hit, 'downgrade'],
    ['admission, cache miss: held (decide(), in process)', request, miss, 'unknown-version'],
  ] as const) {
    const kind = decide(review, state, DEFAULT_CONFIG).kind;
    if (kind !== expected) throw new Error(`${name}: decided ${kind}, expected ${expected}`);
    const samples: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t = process.hrtime.bigint();
      decide(review, state, DEFAULT_CONFIG);
      samples.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    rows.push({ path: name, latency: summarise(samples), unit: 'µs', note: `${iterations} decisions` });
  }
  return rows;
}

function use(image: string, template: Record<string, unknown>): ImageUse {
  return { namespace: NAMESPACE, release: 'airflow', image, source: 'deployment/airflow-scheduler', template };
}

function templateFor(image: string, imagePullSecrets: Array<{ name: string }> = []): Record<string, unknown> {
  const d = chartWorkload({ kind: 'Deployment', component: 'scheduler', namespace: NAMESPACE, image, stored: true });
  const template = (d.spec as { template: { spec: Record<string, unknown> } }).template;
  if (imagePullSecrets.length > 0) template.spec.imagePullSecrets = imagePullSecrets;
  return template;
}

/** A kubernetes.io/dockerconfigjson Secret for the registry, as `kubectl create secret docker-registry` writes it. */
async function createPullSecret(
  cluster: Cluster,
  host: string,
  auth: { username: string; password: string },
): Promise<string> {
  const name = 'bench-registry-pull';
  const config = { auths: { [host]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } } };
  await cluster.create('Secret', NAMESPACE, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NAMESPACE },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  });
  return name;
}

export async function runResolutionBench(
  options: { rounds: number; probeRounds: number; admissionIterations: number },
  log: (line: string) => void,
): Promise<ResolutionReport> {
  const rows = admissionRows(options.admissionIterations);
  const skipped: string[] = [];
  const testbed = await startTestbed({ prefix: 'adg-bench-resolution-' });
  try {
    ensureNamespace(testbed.sim, NAMESPACE);
    const kubeConfig = loadKubeConfig(testbed.adminKubeconfig);
    const cluster = new Cluster(new KubeRest(kubeConfig));
    const exec = createExecRunner(kubeConfig);
    const resolver = (registry: { ca?: string[] }) =>
      new ImageResolver({
        cluster,
        exec,
        logger: silent,
        cache: new ResolutionCache(),
        registry: { ...registry, timeoutMs: 5000 },
        probeTimeoutMs: 30_000,
      });

    if (registryAvailable()) {
      for (const auth of [undefined, { username: 'puller', password: 'bench-pw' }]) {
        const how = auth ? 'htpasswd, a pull secret in the pod spec' : 'anonymous';
        log(`   registry miss: labels read from a real docker-registry (TLS, ${how})`);
        const registry = await startRegistry(auth ? { auth } : {});
        try {
          const pullSecrets = auth ? [{ name: await createPullSecret(cluster, registry.host, auth) }] : [];
          const samples: number[] = [];
          const hits: number[] = [];
          for (let i = 0; i < options.rounds; i++) {
            const image = `${registry.host}/corp/airflow:build-${i}`;
            await registry.push('corp/airflow', `build-${i}`, { labels: { [LABEL]: '2.9.3' } });
            const template = templateFor(image, pullSecrets);
            const r = resolver({ ca: [registry.ca] });
            const t = performance.now();
            const found = await r.resolve(use(image, template));
            samples.push(performance.now() - t);
            if (found.method !== 'registry') throw new Error(`registry round ${i}: resolved by ${found.method}`);
            const again = performance.now();
            if ((await r.resolve(use(image, template))).method !== 'cache')
              throw new Error(`registry round ${i}: the second resolution missed the cache`);
            hits.push(performance.now() - again);
          }
          rows.push({
            path: `coordinator, registry miss, ${how}`,
            latency: summarise(samples),
            unit: 'ms',
            note: `${options.rounds} images, each read once with a fresh cache`,
          });
          rows.push({
            path: `coordinator, then a cache hit (same image, ${auth ? 'htpasswd' : 'anonymous'})`,
            latency: summarise(hits),
            unit: 'ms',
            note: `${options.rounds} lookups`,
          });
        } finally {
          await registry.stop();
        }
      }
    } else {
      skipped.push(`registry miss: ${REGISTRY_BINARY} not found (apt-get install docker-registry)`);
    }

    log('   probe pod: registry unreachable, `airflow version` in a pod of the simulated cluster');
    const samples: number[] = [];
    for (let i = 0; i < options.probeRounds; i++) {
      // Port 1 refuses connections: the registry read fails at once and the probe pod answers.
      const image = `127.0.0.1:1/corp/airflow:probe-${i}`;
      DEFAULT_IMAGE_CATALOG.declare(image, { [LABEL]: '2.8.4' });
      const t = performance.now();
      const found = await resolver({}).resolve(use(image, templateFor(image)));
      samples.push(performance.now() - t);
      if (found.method !== 'probe-pod' || found.version !== '2.8.4')
        throw new Error(`probe round ${i}: resolved ${found.version} by ${found.method}`);
    }
    rows.push({
      path: 'coordinator, probe pod (simulated cluster: create, Running, exec, delete)',
      latency: summarise(samples),
      unit: 'ms',
      note: `${options.probeRounds} pods, registry refused first`,
    });
  } finally {
    await testbed.stop();
  }
  return { rows, skipped };
}
