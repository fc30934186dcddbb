// Private-tag releases under the default `--unknown-version hold`: tags that name no version (a
// build number, a vendor's form) are held at admission, resolved by the coordinator and then
// released (no downgrade) or downgraded. The simulated containers run the version their image's
// labels declare (the in-memory image catalog); no registry answers here, so the probe pod resolves.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE_CATALOG } from '../../testbed/sim/airflow/image.js';
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
import { startRegistry, type TestRegistry } from '../../testbed/oci-registry.js';

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

  it('digest-pinned images 2.9.3 -> 2.8.4: held, resolved by a probe pod, downgraded', async () => {
    const pinned: Record<string, string> = {
      '2.9.3': `${REGISTRY}@sha256:${'1'.repeat(64)}`,
      '2.8.4': `${REGISTRY}@sha256:${'2'.repeat(64)}`,
    };
    for (const [version, image] of Object.entries(pinned))
      DEFAULT_IMAGE_CATALOG.declare(image, { 'org.apache.airflow.version': version });
    e2e = await startE2E();
    const s: ReleaseSpec = { ...spec('pinned'), image: (version) => pinned[version] ?? `unknown:${version}` };
    await e2e.installRelease(s);
    await e2e.startGuard();
    await helmUpgrade(e2e, s, '2.8.4', 'post-upgrade');
    const op = await expectDowngraded(e2e, s, '2.8.4');
    expect(op.steps.find((step) => step.step === 'resolve')?.detail).toMatch(
      /@sha256:2{64} is Airflow 2\.8\.4 \((probe-pod|cache), \d+ ms\)/,
    );
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

  // The warning it is admitted with: test/core/unknown-version.test.ts and test/cli/review.test.ts.
  it('--unknown-version allow keeps the old behaviour: admitted unheld, nothing resolved', async () => {
    e2e = await startE2E();
    const s = spec('allowed');
    await e2e.installRelease(s);
    await e2e.startGuard(undefined, ['--unknown-version', 'allow']);
    const result = await helmUpgrade(e2e, s, '2.9.2', 'pre-upgrade');
    expect(result.applied.length).toBeGreaterThan(0);
    await waitFor('release running 2.9.2', () => releaseReady(e2e!.sim, { ...s, version: '2.9.2' }), 60_000, 100);
    expect(imageOf(s, '2.9.2')).toBe(privateImage('2.9.2'));
    expect(eventsOf(e2e, s.namespace).filter((ev) => ev.reason.startsWith('VersionResolved'))).toEqual([]);
    for (const w of releaseWorkloads(s))
      expect(guardAnnotations(e2e.workload(w.kind, s.namespace, w.name)), w.name).toEqual([]);
  });
});

describe('private-tag releases, versions read from the image labels in a real registry', () => {
  let registry: TestRegistry | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await registry?.stop();
    registry = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('vendor tag rel-agnostic-airflow-main-2.9.3 -> build-4711 (2.8.4): downgraded by labels alone, pull secret from the ServiceAccount', async () => {
    const auth = { username: 'puller', password: 'pull-secret-password' };
    registry = await startRegistry({ auth });
    const repository = `${registry.host}/catalog-airflow-airflow`;
    const images: Record<string, string> = {
      '2.9.3': `${repository}:rel-agnostic-airflow-main-2.9.3`,
      '2.8.4': `${repository}:build-4711`,
    };
    const digests: Record<string, string> = {};
    for (const [version, image] of Object.entries(images)) {
      const labels = { 'org.apache.airflow.version': version, 'org.opencontainers.image.title': 'airflow' };
      digests[version] = await registry.push('catalog-airflow-airflow', image.split(':').pop()!, { labels });
      DEFAULT_IMAGE_CATALOG.declare(image, labels);
    }
    dir = mkdtempSync(join(tmpdir(), 'adg-private-images-'));
    writeFileSync(join(dir, 'registry-ca.pem'), registry.ca);
    writeFileSync(join(dir, 'guard.yaml'), `guard:\n  registry:\n    caFiles: [${join(dir, 'registry-ca.pem')}]\n`);

    e2e = await startE2E();
    const s: ReleaseSpec = { ...spec('labels'), image: (version) => images[version] ?? `unknown:${version}` };
    await e2e.installRelease(s);
    const dockerconfigjson = JSON.stringify({ auths: { [registry.host]: auth } });
    await e2e.admin.create('Secret', s.namespace, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'corp-registry', namespace: s.namespace },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(dockerconfigjson).toString('base64') },
    });
    for (const component of [...(s.components ?? []), 'run-airflow-migrations', 'database-cleanup']) {
      const name = `${s.release}-${component}`;
      const pullSecrets = [{ name: 'corp-registry' }];
      if (await e2e.admin.find('ServiceAccount', s.namespace, name))
        await e2e.admin.patch('ServiceAccount', s.namespace, name, [
          { op: 'add', path: '/imagePullSecrets', value: pullSecrets },
        ]);
      else
        await e2e.admin.create('ServiceAccount', s.namespace, {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name, namespace: s.namespace },
          imagePullSecrets: pullSecrets,
        });
    }
    await e2e.startGuard(undefined, ['--config', join(dir, 'guard.yaml')]);
    await helmUpgrade(e2e, s, '2.8.4', 'post-upgrade');
    const op = await expectDowngraded(e2e, s, '2.8.4');
    const resolved = op.steps.find((step) => step.step === 'resolve');
    expect(resolved?.detail).toContain(`${images['2.8.4']} is Airflow 2.8.4 (registry, ${digests['2.8.4']}`);
    // Labels alone: no probe pod was needed.
    expect(
      eventsOf(e2e, s.namespace)
        .map((ev) => ev.message)
        .join('\n'),
    ).not.toMatch(/probe-pod/);
    console.log(`registry resolution: ${resolved?.detail}`);
  });
});
