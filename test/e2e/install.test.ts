// The install as shipped, end to end: `kubectl kustomize deploy/…` applied to the simulated API
// server with RBAC enforced, the guard started the way its Deployment starts it (self-managed
// certificates, its own ServiceAccount), then the 3.1.0 → 3.0.2 Helm downgrade through it.
// What is applied is checked to equal the `manifests` command's output with the same options
// (test/install/deploy.test.ts compares every overlay with renderInstallManifests in-process).
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { headForVersion } from '../../src/core/heads.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import { TLS_SECRET_NAME, WEBHOOK_CONFIGURATION_NAME } from '../../src/install/names.js';
import { describeGrant } from '../../testbed/sim/rbac/authorizer.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { objectKey } from '../../src/install/deploy-tree.js';
import type { Manifest } from '../../src/install/manifests.js';
import { readAlembicRevision } from '../../src/db/alembic.js';
import { DEFAULT_COMPONENTS, helmUpgrade, releaseReady, stepSequence, waitFor, type ReleaseSpec } from './harness.js';
import { kustomize, manifestsCommand, startInstalledE2E, type InstalledE2E } from './install-harness.js';

const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

/**
 * Grants the scenarios below do not exercise, each with the reason it is still needed. Anything
 * else left unused fails the test: the RBAC in deploy/ must be exactly what the code uses.
 */
const ALLOWED_UNUSED: ReadonlyArray<{ grant: RegExp; why: string }> = [
  // Time path: replacing the certificate Secret happens when the certificate nears expiry
  // (rotation) or a hand-made Secret without ca.key is adopted; test/certs covers both.
  { grant: /^update core\/secrets \[airflow-downgrade-guard-tls\] /, why: 'certificate rotation' },
  // Conflict path: the coordinator keeps the operation state it wrote and reads the ConfigMap back only
  // when another writer got there first (a second replica, `retry`/`abort`); test/e2e/ha covers it.
  { grant: /^get core\/configmaps /, why: 'operation state read back after a conflict' },
  // Return path: a held Job a return to the from-version leaves behind is deleted; helm-safety.test.ts
  // (b) and (c) cover it, installed from deploy/base with RBAC enforced.
  { grant: /^delete batch\/jobs /, why: 'held Job left behind by a return' },
  // Private-image path: a held workload's ServiceAccount is read for its imagePullSecrets only when an
  // image's tag names no version (these releases use apache/airflow tags); scenarios-private-images covers it.
  { grant: /^get core\/serviceaccounts /, why: 'pull secrets of a private image to resolve its version' },
];

let e2e: InstalledE2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

const SPEC: ReleaseSpec = { release: 'airflow', namespace: 'airflow', version: '3.1.0', replicas: { scheduler: 2 } };
// The official chart runs Celery workers as a StatefulSet when worker persistence is on.
const WITH_STATEFUL_WORKER: ReleaseSpec = { ...SPEC, statefulSets: ['worker'] };
// A release scaled to zero before its downgrade: no pod of the newer version to exec into, so the
// guard starts a runner pod from the newer version's old ReplicaSet and removes it afterwards.
const SCALED_DOWN: ReleaseSpec = {
  release: 'quiet',
  namespace: 'airflow',
  version: '3.1.0',
  replicas: Object.fromEntries(DEFAULT_COMPONENTS.map((c) => [c, 0])),
};

type WebhookConfiguration = {
  webhooks: Array<{ name: string; clientConfig: { caBundle?: string; service?: { name: string; namespace: string } } }>;
};

function expectCaBundleInjected(e: InstalledE2E): void {
  const config = e.sim.store.get(
    RESOURCES.mutatingwebhookconfigurations,
    undefined,
    WEBHOOK_CONFIGURATION_NAME,
  ) as unknown as WebhookConfiguration;
  const secret = e.sim.store.get(RESOURCES.secrets, e.guardNamespace, TLS_SECRET_NAME) as unknown as
    { type: string; data: Record<string, string> } | undefined;
  expect(secret?.type).toBe('kubernetes.io/tls');
  const servingCert = new X509Certificate(Buffer.from(secret!.data['tls.crt']!, 'base64'));
  expect(servingCert.subjectAltName).toContain(`DNS:airflow-downgrade-guard.${e.guardNamespace}.svc`);
  expect(config.webhooks.length).toBeGreaterThan(0);
  for (const hook of config.webhooks) {
    // The installed entry, still pointing at the Service (not rewritten by the test), now trusting the guard's CA.
    expect(hook.clientConfig.service).toMatchObject({ name: 'airflow-downgrade-guard', namespace: e.guardNamespace });
    expect(hook.clientConfig.caBundle).toBe(secret!.data['ca.crt']);
  }
}

function guardDenials(e: InstalledE2E): string[] {
  return e.rbac
    .denials()
    .filter((d) => d.user === e.guardIdentity.user)
    .map(
      (d) =>
        `${d.verb} ${d.apiGroup || 'core'}/${d.resource}${d.subresource ? `/${d.subresource}` : ''} ${d.namespace ?? '(cluster)'}/${d.name ?? ''}`,
    );
}

/** waitFor that gives up at the first RBAC denial of the guard instead of running into its timeout. */
async function until<T>(e: InstalledE2E, what: string, probe: () => T | undefined | false): Promise<T> {
  const result = await waitFor(
    what,
    () => (guardDenials(e).length > 0 ? { denied: true as const } : ((v) => (v ? { value: v } : false))(probe())),
    60_000,
    100,
  );
  if ('denied' in result)
    throw new Error(`RBAC denied the guard while waiting for ${what}:\n${[...new Set(guardDenials(e))].join('\n')}`);
  return result.value;
}

async function runHelmDowngrade(e: InstalledE2E, spec: ReleaseSpec): Promise<void> {
  await e.installRelease(spec);
  expect(await e.revision()).toBe(head('3.1.0'));
  await helmUpgrade(e, spec, '3.0.2', 'post-upgrade');
  const done = await until(
    e,
    'operation done',
    () => e.operation(spec.namespace, spec.release)?.phase === 'done' && e.operation(spec.namespace, spec.release),
  );
  await until(e, 'release running 3.0.2', () => releaseReady(e.sim, { ...spec, version: '3.0.2' }));
  console.log(`operation steps: ${done.steps.map((st) => `${st.step} ${st.outcome} ${st.durationMs} ms`).join(', ')}`);
  expect(stepSequence(done)).toEqual(['open', 'confirm', 'downgrade', 'verify', 'drain', 'release']);
  expect(await e.revision()).toBe(head('3.0.2'));
  await e.sim.runtime.sweep();
  expect(e.sim.runtime.violations.list()).toEqual([]);
}

async function runScaledDownDowngrade(e: InstalledE2E, spec: ReleaseSpec): Promise<void> {
  const databaseUrl = await e.installReleaseOnOwnDatabase(spec);
  await helmUpgrade(e, spec, '3.0.2', 'post-upgrade');
  const done = await until(
    e,
    `operation of ${spec.release} done`,
    () => e.operation(spec.namespace, spec.release)?.phase === 'done' && e.operation(spec.namespace, spec.release),
  );
  expect(done.execPod?.runner).toBe(true);
  expect(stepSequence(done)).toEqual(['open', 'confirm', 'downgrade', 'verify', 'drain', 'release']);
  expect((await readAlembicRevision(databaseUrl)).revision).toBe(head('3.0.2'));
  await until(
    e,
    'runner pod removed',
    () =>
      !e.sim.store
        .list(RESOURCES.pods, spec.namespace)
        .items.some((p) => p.metadata.name.startsWith('airflow-downgrade-guard-runner-')),
  );
}

function sortedByKey(objects: Manifest[]): Manifest[] {
  return [...objects].sort((a, b) => objectKey(a).localeCompare(objectKey(b)));
}

function expectNoDenials(e: InstalledE2E): void {
  expect(guardDenials(e)).toEqual([]);
}

function reportUnused(e: InstalledE2E, label: string): string[] {
  const unused = e.rbac.unusedGrants(e.guardIdentity);
  const lines = unused.map(describeGrant);
  console.log(
    `[${label}] granted permissions no scenario used (${lines.length}):\n${lines.map((l) => `  - ${l}`).join('\n') || '  (none)'}`,
  );
  const mine = e.unusedGrants();
  // An allow-list entry that no longer matches an unused grant is stale: remove it.
  const stale = ALLOWED_UNUSED.filter((a) => !mine.some((line) => a.grant.test(line))).map(
    (a) => `stale ALLOWED_UNUSED entry ${a.grant} (${a.why})`,
  );
  return [...stale, ...mine.filter((line) => !ALLOWED_UNUSED.some((a) => a.grant.test(line)))];
}

describe('install from deploy/ with RBAC enforced, then 3.1.0 -> 3.0.2', () => {
  it.each([
    ['base', 'cluster-wide RBAC', [], WITH_STATEFUL_WORKER],
    [
      'overlays/namespaced',
      "RBAC limited to watchNamespaces ['airflow']",
      ['--watch-namespaces', 'airflow'],
      WITH_STATEFUL_WORKER,
    ],
  ] as const)(
    'deploy/%s (%s)',
    async (dir, _what, cliArgs, spec) => {
      const install = kustomize(dir);
      // What gets applied is what both install paths render: kubectl kustomize and the manifests command.
      expect(sortedByKey(manifestsCommand([...cliArgs]))).toEqual(sortedByKey(install));
      // Steps slow enough that the operation outlives a third of the 3 s lease: the holder renews it.
      e2e = await startInstalledE2E(install, { stepDurationMs: 700 });
      await e2e.startGuard();
      expectCaBundleInjected(e2e);
      await runHelmDowngrade(e2e, spec);
      await runScaledDownDowngrade(e2e, SCALED_DOWN);
      await e2e.sim.runtime.sweep();
      expect(e2e.sim.runtime.violations.list()).toEqual([]);
      expectNoDenials(e2e);
      expect(reportUnused(e2e, dir)).toEqual([]);
    },
    150_000,
  );
});
