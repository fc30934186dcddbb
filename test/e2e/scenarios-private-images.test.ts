// Private-tag releases under the default `--unknown-version hold`: tags that name no version (a
// build number, a vendor's form) are held at admission, resolved by the coordinator and then
// released (no downgrade) or downgraded. The simulated containers run the version their image's
// labels declare (the in-memory image catalog); no registry answers here, so the probe pod resolves.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE_CATALOG } from '../../src/sim/airflow/image.js';
import {
  eventsOf,
  expectDowngraded,
  expectNoViolations,
  guardAnnotations,
  headOf,
  helmUpgrade,
  imageOf,
  releaseReady,
  releaseWorkloads,
  startE2E,
  waitFor,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

const REGISTRY = 'registry.corp.invalid/catalog-airflow-airflow';
const TAGS: Record<string, string> = {
  '2.9.3': 'build-4711',
  '2.8.4': 'rel-agnostic-airflow-main-2.8.4',
  '2.9.2': 'build-4712',
  '2.10.5': 'build-4800',
};
for (const [version, tag] of Object.entries(TAGS))
  DEFAULT_IMAGE_CATALOG.declare(`${REGISTRY}:${tag}`, { 'org.apache.airflow.version': version });

const privateImage = (version: string): string => `${REGISTRY}:${TAGS[version] ?? version}`;

let e2e: E2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

const spec = (release: string): ReleaseSpec => ({
  release,
  namespace: release,
  version: '2.9.3',
  components: ['webserver', 'scheduler', 'triggerer', 'worker', 'statsd'],
  image: privateImage,
});

describe('private-tag releases, versions resolved by a probe pod', () => {
  it('2.9.3 (build-4711) -> 2.8.4 (rel-agnostic-airflow-main-2.8.4): held, resolved, downgraded', async () => {
    e2e = await startE2E();
    const s = spec('vendored');
    await e2e.installRelease(s);
    await e2e.startGuard();
    expect(await e2e.revision()).toBe(headOf('2.9.3'));
    const began = Date.now();
    await helmUpgrade(e2e, s, '2.8.4', 'post-upgrade');
    const op = await expectDowngraded(e2e, { ...s }, '2.8.4');
    const resolved = op.steps.find((step) => step.step === 'resolve');
    expect(resolved?.detail).toMatch(
      new RegExp(
        `${privateImage('2.8.4').replace(/[.]/g, '\\.')} is Airflow 2\\.8\\.4 \\((probe-pod|cache), \\d+ ms\\)`,
      ),
    );
    const events = eventsOf(e2e, s.namespace);
    expect(events.filter((ev) => ev.reason === 'VersionResolvedDowngrade').length).toBeGreaterThan(0);
    expect(
      e2e.sim.store
        .list({ group: '', version: 'v1', plural: 'pods' } as never, s.namespace)
        .items.filter((p: any) => String(p.metadata.name).startsWith('airflow-downgrade-guard-probe-')),
    ).toEqual([]);
    console.log(`private-tag downgrade held, resolved and downgraded in ${Date.now() - began} ms`);
  });

  it('forward (2.9.3 -> 2.10.5) and same head (2.9.3 -> 2.9.2) with private tags: released, no downgrade', async () => {
    e2e = await startE2E();
    const s = spec('forward');
    await e2e.installRelease(s);
    await e2e.startGuard();
    await helmUpgrade(e2e, s, '2.9.2', 'post-upgrade');
    await waitFor('release running 2.9.2', () => releaseReady(e2e!.sim, { ...s, version: '2.9.2' }), 60_000, 100);
    expect(await e2e.revision()).toBe(headOf('2.9.3'));
    await expectNoViolations(e2e);
    await helmUpgrade(e2e, s, '2.10.5', 'post-upgrade');
    await waitFor('release running 2.10.5', () => releaseReady(e2e!.sim, { ...s, version: '2.10.5' }), 60_000, 100);
    expect(await e2e.revision()).toBe(headOf('2.10.5'));
    // As with upstream tags: 2.9.2 pods still running while the Job migrates forward are what every
    // forward rollout does; nothing else may have run on a schema it does not know.
    await e2e.sim.runtime.sweep();
    expect(
      e2e.sim.runtime.violations.list().filter((v) => v.imageVersion !== '2.9.2' || v.dbRevision === headOf('2.9.2')),
    ).toEqual([]);
    e2e.sim.runtime.violations.clear();
    expect(e2e.operation(s.namespace, s.release)).toBeUndefined();
    for (const w of releaseWorkloads(s))
      expect(guardAnnotations(e2e.workload(w.kind, s.namespace, w.name)), w.name).toEqual([]);
    const resolvedEvents = eventsOf(e2e, s.namespace).filter((ev) => ev.reason === 'VersionResolved');
    expect(resolvedEvents.map((ev) => ev.message).join('\n')).toMatch(/no downgrade, released/);
    console.log(resolvedEvents.map((ev) => `${ev.involvedObject.name}: ${ev.message}`).join('\n'));
  });

  it('--unknown-version allow keeps the old behaviour: admitted with its warning, nothing held', async () => {
    e2e = await startE2E();
    const s = spec('allowed');
    await e2e.installRelease(s);
    await e2e.startGuard(undefined, ['--unknown-version', 'allow']);
    const result = await helmUpgrade(e2e, s, '2.9.2', 'pre-upgrade');
    expect(result.applied.length).toBeGreaterThan(0);
    await waitFor('release running 2.9.2', () => releaseReady(e2e!.sim, { ...s, version: '2.9.2' }), 60_000, 100);
    expect(imageOf(s, '2.9.2')).toBe(privateImage('2.9.2'));
    expect(eventsOf(e2e, s.namespace).filter((ev) => ev.reason.startsWith('VersionResolved'))).toEqual([]);
  });
});
