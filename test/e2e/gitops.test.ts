// GitOps imitated with the real kubectl 1.35.2: Argo CD's client-side and server-side syncs (field
// manager argocd-controller) and Flux's kustomize-controller (server-side, kustomize-controller),
// both forcing conflicts as those controllers do. The desired state is the fixture chart rendered with
// `helm template`. A downgrade commit is synced, then the same desired state is re-applied (a
// self-heal) while the release is held and again while it drains: the operation's outcome does not
// change. The ignore rules of docs/gitops/*.yaml are checked against what differs between the desired
// state and the live objects at each of those moments (docs/gitops.md).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ANNOTATIONS } from '../../src/core/config.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { writeAirflowFixtureChart } from '../support/airflow-chart.js';
import { helmFor } from '../support/helm.js';
import { kubectlFor, removeKubectlDirs, type Kubectl } from '../testbed/sim/support.js';
import {
  FULL_SEQUENCE,
  ROOT,
  expectDowngraded,
  guardAnnotations,
  podImage,
  releaseReady,
  startE2E,
  stepSequence,
  waitFor,
  whenOperation,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

const COMPONENTS = ['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'statsd'];
const spec = (version: string): ReleaseSpec => ({
  release: 'airflow',
  namespace: 'airflow',
  version,
  components: COMPONENTS,
  statefulSets: ['triggerer', 'worker'],
  replicas: { scheduler: 2 },
});
const HELD_KINDS = ['Deployment', 'StatefulSet', 'CronJob', 'Job'];

interface GitOpsTool {
  name: string;
  /** kubectl apply arguments of one sync. */
  apply: string[];
  /** The ignore rules of that tool's settings in docs/gitops/. */
  rules: () => IgnoreRule[];
}

/** One ignore rule: JSON pointers ignored on objects of a kind. */
interface IgnoreRule {
  kind: RegExp;
  pointers: string[];
}

function docsYaml(file: string): any {
  return parse(readFileSync(path.join(ROOT, 'docs/gitops', file), 'utf8'));
}

const argoRules = (): IgnoreRule[] =>
  (docsYaml('argocd-application.yaml').spec.ignoreDifferences as Array<{ kind: string; jsonPointers: string[] }>).map(
    (r) => ({ kind: new RegExp(`^${r.kind}$`), pointers: r.jsonPointers }),
  );
const fluxRules =
  (file: string, at: (doc: any) => Array<{ paths: string[]; target: { kind: string } }>) => (): IgnoreRule[] =>
    at(docsYaml(file)).map((r) => ({ kind: new RegExp(`^(?:${r.target.kind})$`), pointers: r.paths }));

const TOOLS: GitOpsTool[] = [
  {
    name: 'Argo CD, client-side apply',
    apply: ['apply', '--field-manager=argocd-controller'],
    rules: argoRules,
  },
  {
    name: 'Argo CD, ServerSideApply=true',
    apply: ['apply', '--server-side', '--field-manager=argocd-controller', '--force-conflicts'],
    rules: argoRules,
  },
  {
    name: 'Flux kustomize-controller',
    apply: ['apply', '--server-side', '--field-manager=kustomize-controller', '--force-conflicts'],
    rules: fluxRules('flux-kustomization.yaml', (d) => d.spec.driftIgnoreRules),
  },
];

/** Where the desired object and the live one differ, as JSON pointers, for the fields the desired one sets. */
function desiredDiff(desired: unknown, live: unknown, at = ''): string[] {
  // A null in a manifest sets nothing (the chart's `creationTimestamp: null`).
  if (desired === null) return live === undefined || live === null ? [] : [at];
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return [at];
    return desired.flatMap((d, i) => desiredDiff(d, live[i], `${at}/${i}`));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return [at];
    return Object.entries(desired).flatMap(([key, value]) =>
      desiredDiff(
        value,
        (live as Record<string, unknown>)[key],
        `${at}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`,
      ),
    );
  }
  return desired === live ? [] : [at];
}

const ignored = (rules: IgnoreRule[], kind: string, pointer: string): boolean =>
  rules.some((r) => r.kind.test(kind) && r.pointers.some((p) => pointer === p || pointer.startsWith(`${p}/`)));

describe('GitOps settings in docs/gitops/', () => {
  it('Flux: the HelmRelease drift ignore rules are those of the Kustomization (checked by the scenarios)', () => {
    const helmRelease = fluxRules('flux-helmrelease.yaml', (d) => d.spec.driftDetection.ignore)();
    const kustomization = fluxRules('flux-kustomization.yaml', (d) => d.spec.driftIgnoreRules)();
    expect(helmRelease).toEqual(kustomization);
    expect(docsYaml('flux-helmrelease.yaml').spec.driftDetection.mode).toBe('enabled');
  });
});

const table: string[] = [];
afterAll(() => {
  if (table.length) console.log(['tool | scenario | outcome | ms', ...table].join('\n'));
});

for (const tool of TOOLS) {
  describe(`GitOps: ${tool.name}`, () => {
    let e2e: E2E | undefined;
    let dir: string | undefined;
    let lock: pg.Client | undefined;
    afterEach(async () => {
      await lock?.end().catch(() => undefined);
      await e2e?.stop();
      removeKubectlDirs();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it(
      'a downgrade commit synced, then self-heal re-applies while held and while draining: same steps, no violation, settles at the target',
      { timeout: 300_000 },
      async () => {
        // Pods of 3.1.0 stay Terminating while this is set: the drain lasts until the re-apply is done.
        let holdDrain = false;
        e2e = await startE2E({
          stuckTerminating: (pod) => holdDrain && podImage(pod).includes('apache/airflow:3.1.0'),
        });
        const sim = e2e.sim;
        await e2e.startGuard();
        dir = mkdtempSync(path.join(os.tmpdir(), 'adg-gitops-'));
        const chart = writeAirflowFixtureChart(path.join(dir, 'airflow'));
        const renderer = helmFor(4, '');
        const render = async (version: string): Promise<KubeObject[]> =>
          parseAllDocuments(
            await renderer.template([
              'airflow',
              chart,
              '-n',
              'airflow',
              '--set',
              `metadataConnection=${e2e!.db.url}`,
              '--set',
              `airflowVersion=${version}`,
            ]),
          )
            .map((d) => d.toJS() as KubeObject)
            .filter(Boolean);
        const kubectl: Kubectl = kubectlFor(sim.api.kubeconfig());
        const rules = tool.rules();
        const sync = async (objects: KubeObject[]): Promise<void> => {
          const result = await kubectl([...tool.apply, '-n', 'airflow', '-f', '-'], {
            input: objects.map((o) => JSON.stringify(o)).join('\n'),
          });
          expect(result.code, result.stderr).toBe(0);
        };
        const live = (o: KubeObject): KubeObject | undefined =>
          sim.store.get(
            Object.values(RESOURCES).find((r) => r.kind === o.kind)!,
            'airflow',
            o.metadata.name,
          ) as KubeObject | undefined;
        /** The differences a tool's diff shows, and those its ignore rules leave. */
        const differences = (desired: KubeObject[]) => {
          const all = desired.flatMap((o) =>
            desiredDiff(o, live(o)).map((p) => ({ kind: o.kind, name: o.metadata.name, pointer: p })),
          );
          return { all, shown: all.filter((d) => !ignored(rules, d.kind, d.pointer)) };
        };
        const workloads = (desired: KubeObject[]) => desired.filter((o) => HELD_KINDS.includes(o.kind));
        const isHeld = (o: KubeObject): boolean => {
          const l = live(o) as any;
          if (!guardAnnotations(l).includes(ANNOTATIONS.hold)) return false;
          if (o.kind === 'Deployment') return l.spec.paused === true;
          if (o.kind === 'StatefulSet') return l.spec.updateStrategy.rollingUpdate.partition >= l.spec.replicas;
          return l.spec.suspend === true;
        };
        const airflowWorkloads = (desired: KubeObject[]) =>
          workloads(desired).filter((o) => !/pgbouncer|statsd/.test(o.metadata.name));

        try {
          // Install: the tool creates the release from nothing (not a downgrade: untouched).
          await kubectl(['create', 'namespace', 'airflow']);
          await sync(await render('3.1.0'));
          await waitFor('release running 3.1.0', () => releaseReady(sim, spec('3.1.0')), 60_000, 50);
          expect(e2e.operation('airflow', 'airflow')).toBeUndefined();

          // The downgrade commit. The migration Job is immutable: both tools replace it (Argo CD's
          // hook delete policy, Flux's force); the downgrade exec waits on the migration lock the test
          // holds, so the hold lasts until the first self-heal is done.
          const desired = await render('3.0.2');
          lock = new pg.Client({ connectionString: e2e.db.url });
          await lock.connect();
          await lock.query('SELECT pg_advisory_lock(1)');
          holdDrain = true;
          expect((await kubectl(['delete', 'job', '-n', 'airflow', 'airflow-run-airflow-migrations'])).code).toBe(0);
          const started = Date.now();
          await sync(desired);
          await waitFor(
            'every Airflow workload held',
            () => {
              const notHeld = airflowWorkloads(desired).filter((o) => !isHeld(o));
              if (notHeld.length === 0) return true;
              throw new Error(
                `not held: ${notHeld.map((o) => `${o.kind}/${o.metadata.name} ${JSON.stringify({ spec: (live(o) as any)?.spec?.paused ?? (live(o) as any)?.spec?.suspend ?? (live(o) as any)?.spec?.updateStrategy, a: guardAnnotations(live(o)) })}`).join('; ')}; operation ${JSON.stringify(e2e!.operation('airflow', 'airflow')?.phase)}`,
              );
            },
            30_000,
          );
          // The webhook holds at admission; the coordinator opens the operation when it sees the holds.
          const opened = await waitFor(
            'operation opened',
            () => {
              const op = e2e!.operation('airflow', 'airflow');
              return op;
            },
            30_000,
          );
          expect(['confirm', 'downgrade']).toContain(opened.phase);

          // While held, the tool's diff (every field the desired state sets) shows the hold, and only
          // fields the docs' rules ignore.
          const whileHeld = differences(desired);
          expect(whileHeld.all.length).toBeGreaterThan(0);
          expect(whileHeld.shown).toEqual([]);
          // Self-heal: the whole desired state again (partition 0, suspend false, replicas): still held.
          await sync(desired);
          expect(
            airflowWorkloads(desired)
              .filter((o) => !isHeld(o))
              .map((o) => o.metadata.name),
          ).toEqual([]);
          expect(e2e.operation('airflow', 'airflow')?.id).toBe(opened?.id);
          await lock.query('SELECT pg_advisory_unlock(1)');

          // While draining: replicas at 0 (the drained annotation) whatever the re-apply sends.
          await whenOperation(e2e, 'airflow', 'airflow', (op) => op.phase === 'drain');
          await waitFor(
            'a workload drained',
            () => airflowWorkloads(desired).some((o) => guardAnnotations(live(o)).includes(ANNOTATIONS.drained)),
            20_000,
            20,
          );
          const whileDraining = differences(desired);
          expect(whileDraining.all.map((d) => d.pointer)).toContain('/spec/replicas');
          expect(whileDraining.shown).toEqual([]);
          await sync(desired);
          const drained = airflowWorkloads(desired).filter((o) =>
            guardAnnotations(live(o)).includes(ANNOTATIONS.drained),
          );
          expect(drained.length).toBeGreaterThan(0);
          for (const o of drained) {
            const spec = (live(o) as any).spec;
            if (o.kind === 'CronJob') expect(spec.suspend, `${o.metadata.name} suspend`).toBe(true);
            else expect(spec.replicas, `${o.metadata.name} replicas`).toBe(0);
          }
          expect(e2e.operation('airflow', 'airflow')?.phase).toBe('drain');
          holdDrain = false;

          const op = await expectDowngraded(e2e, spec('3.1.0'), '3.0.2');
          const ms = Date.now() - started;
          expect(op.id).toBe(opened?.id);
          expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
          // Settled: the desired state and the live objects agree without any ignore rule.
          expect(differences(desired).all).toEqual([]);
          table.push(
            `${tool.name} | downgrade 3.1.0 -> 3.0.2, self-heal while held and while draining | ${op.phase}, ${stepSequence(op).join('>')}, 0 violations | ${ms}`,
          );
        } finally {
          renderer.cleanup();
        }
      },
    );
  });
}
