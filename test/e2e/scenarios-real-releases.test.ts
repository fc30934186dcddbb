// Releases as real charts and images run them: an Airflow newer than the guard's table of schema
// heads (its heads read from the running image), and metadata connections found where the pods get them.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { queryAuditRows } from '../../src/audit/store.js';
import { DEFAULT_IMAGE_CATALOG } from '../../testbed/sim/airflow/index.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { chartWorkload } from '../fixtures/admission/builders.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { setRevision } from '../testbed/sim/airflow/helpers.js';
import {
  eventsOf,
  expectDowngraded,
  expectNoViolations,
  FULL_SEQUENCE,
  headOf,
  helmUpgrade,
  podsOf,
  releaseReady,
  releaseWorkloads,
  setImage,
  stepSequence,
  startE2E,
  upgradeRelease,
  waitFor,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

let e2e: E2E | undefined;
let audit: TestDatabase | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
  await audit?.drop();
  audit = undefined;
});

const CONN = 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN';
type EnvVar = Record<string, unknown>;

async function createSecret(e: E2E, namespace: string, name: string, data: Record<string, string>): Promise<void> {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  await e.admin.create('Secret', namespace, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    data: encoded,
  });
}

function envOf(pod: KubeObject): EnvVar[][] {
  const spec = pod.spec as { containers: Array<{ env?: EnvVar[] }>; initContainers?: Array<{ env?: EnvVar[] }> };
  return [...spec.containers, ...(spec.initContainers ?? [])].map((c) => c.env ?? []);
}

/**
 * Every Airflow container (init containers too) of the release's Deployments gets `env` as its whole
 * environment, as a chart with other database settings would render it; waits until only pods with
 * it run. The guard is not started yet: a plain rollout.
 */
async function renderWithEnv(e: E2E, s: ReleaseSpec, env: EnvVar[]): Promise<void> {
  for (const w of releaseWorkloads(s)) {
    if (w.component === 'statsd') continue;
    const spec = (
      e.workload(w.kind, s.namespace, w.name) as { spec: { template: { spec: Record<string, unknown[]> } } }
    ).spec.template.spec;
    const ops = (['containers', 'initContainers'] as const).flatMap((list) =>
      (spec[list] ?? []).map((_c, i) => ({
        op: 'add' as const,
        path: `/spec/template/spec/${list}/${i}/env`,
        value: env,
      })),
    );
    await e.admin.patch(w.kind as 'Deployment', s.namespace, w.name, ops);
  }
  const marker = env[0]?.name;
  await waitFor(
    'release rolled out with its new database settings',
    () =>
      releaseReady(e.sim, s) &&
      podsOf(e.sim, s.namespace, s.release)
        .filter((p) => p.metadata.labels?.component !== 'statsd')
        .every((p) => envOf(p).every((list) => list.some((v) => v.name === marker))),
    30_000,
    100,
  );
}

/** A release past the table: 3.4.0 adds two migrations the guard's table does not know. */
const FUTURE = { version: '3.4.0', migrations: ['f0a1b2c3d4e5', 'f0a1b2c3d4e6'] };

describe('releases past the built-in table of schema heads', () => {
  it('3.4.0 -> 3.3.0: the heads come from the 3.4.0 image itself, the downgrade runs to 3.3.0', async () => {
    DEFAULT_IMAGE_CATALOG.declare(
      `apache/airflow:${FUTURE.version}`,
      { 'org.apache.airflow.version': FUTURE.version },
      FUTURE.migrations,
    );
    e2e = await startE2E();
    const s: ReleaseSpec = { release: 'future', namespace: 'future', version: FUTURE.version };
    await e2e.installRelease(s);
    expect(await e2e.revision()).toBe(FUTURE.migrations.at(-1));
    const guard = await e2e.startGuard();
    await helmUpgrade(e2e, s, '3.3.0', 'post-upgrade');
    const op = await expectDowngraded(e2e, s, '3.3.0');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(op).toMatchObject({ fromRevision: FUTURE.migrations.at(-1), toRevision: headOf('3.3.0') });
    expect(guard.logs.join('\n')).toMatch(/schema heads from the heads map of image sha256:[0-9a-f]{64}/);
    // The image's map agrees with the table where both know a version: nothing to warn about.
    expect(guard.logs.join('\n')).not.toMatch(/disagrees with the built-in table/);
  });
});

/** Two releases past the table: 3.5.0's image knows 3.4.0's migrations (and lists 3.4.0 in its map). */
const FURTHER = { version: '3.5.0', migrations: ['f0a1b2c3d4f1', 'f0a1b2c3d4f2'] };

describe('a downgrade with both versions past the built-in table', () => {
  it('3.5.0 -> 3.4.0: held, both heads read from the 3.5.0 image, downgraded, verified and released', async () => {
    DEFAULT_IMAGE_CATALOG.declare(
      `apache/airflow:${FUTURE.version}`,
      { 'org.apache.airflow.version': FUTURE.version },
      FUTURE.migrations,
    );
    DEFAULT_IMAGE_CATALOG.declare(
      `apache/airflow:${FURTHER.version}`,
      { 'org.apache.airflow.version': FURTHER.version },
      { [FUTURE.version]: FUTURE.migrations, [FURTHER.version]: FURTHER.migrations },
    );
    e2e = await startE2E();
    const s: ReleaseSpec = { release: 'further', namespace: 'further', version: FURTHER.version };
    await e2e.installRelease(s);
    expect(await e2e.revision()).toBe(FURTHER.migrations.at(-1));
    const guard = await e2e.startGuard();
    await helmUpgrade(e2e, s, FUTURE.version, 'post-upgrade');
    const op = await expectDowngraded(e2e, s, FUTURE.version, FUTURE.migrations.at(-1)!);
    expect(stepSequence(op).filter((step) => step !== 'resolve')).toEqual(FULL_SEQUENCE);
    expect(op.steps.find((step) => step.step === 'resolve')?.detail).toMatch(/Airflow 3\.4\.0/);
    expect(op).toMatchObject({
      fromVersion: FURTHER.version,
      toVersion: FUTURE.version,
      fromRevision: FURTHER.migrations.at(-1),
      toRevision: FUTURE.migrations.at(-1),
    });
    expect(guard.logs.join('\n')).toMatch(/schema heads from the heads map of image sha256:[0-9a-f]{64}/);
  });

  it('the same with private tags (build-35 -> build-34): versions by a probe pod, heads from the image build-35 runs', async () => {
    const tags: Record<string, string> = {
      [FURTHER.version]: 'registry.corp.invalid/catalog-airflow-airflow:build-35',
      [FUTURE.version]: 'registry.corp.invalid/catalog-airflow-airflow:build-34',
    };
    const image = (version: string): string => tags[version] ?? `unknown:${version}`;
    DEFAULT_IMAGE_CATALOG.declare(
      image(FUTURE.version),
      { 'org.apache.airflow.version': FUTURE.version },
      FUTURE.migrations,
    );
    DEFAULT_IMAGE_CATALOG.declare(
      image(FURTHER.version),
      { 'org.apache.airflow.version': FURTHER.version },
      { [FUTURE.version]: FUTURE.migrations, [FURTHER.version]: FURTHER.migrations },
    );
    e2e = await startE2E();
    const s: ReleaseSpec = { release: 'private', namespace: 'private', version: FURTHER.version, image };
    await e2e.installRelease(s);
    const guard = await e2e.startGuard();
    await helmUpgrade(e2e, s, FUTURE.version, 'post-upgrade');
    const op = await expectDowngraded(e2e, s, FUTURE.version, FUTURE.migrations.at(-1)!);
    expect(guard.logs.join('\n')).toMatch(/schema heads from the heads map of image sha256:[0-9a-f]{64}/);
    expect(op).toMatchObject({
      fromVersion: FURTHER.version,
      fromRevision: FURTHER.migrations.at(-1),
      toRevision: FUTURE.migrations.at(-1),
    });
    expect(op.steps.find((step) => step.step === 'resolve')?.detail).toMatch(
      /build-34 is Airflow 3\.4\.0 \((probe-pod|cache), \d+ ms\)/,
    );
  });
});

describe('the database the pods really use', () => {
  it('official chart with data.metadataSecretName: the connection is read from the Secret its pods name', async () => {
    e2e = await startE2E();
    const s: ReleaseSpec = {
      release: 'named',
      namespace: 'named',
      version: '3.1.0',
      components: ['api-server', 'scheduler', 'statsd'],
      cronJobs: false,
    };
    await e2e.installRelease(s);
    await createSecret(e2e, s.namespace, 'company-airflow-db', { connection: e2e.db.url });
    await renderWithEnv(e2e, s, [
      { name: CONN, valueFrom: { secretKeyRef: { name: 'company-airflow-db', key: 'connection' } } },
    ]);
    // No <release>-metadata Secret: the old lookup would find nothing.
    await e2e.admin.delete('Secret', s.namespace, 'named-metadata', 0);
    const guard = await e2e.startGuard();
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(guard.logs.join('\n')).toMatch(
      /"source":"Secret company-airflow-db key connection \(env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN \(secretKeyRef\)\)","msg":"metadata database connection found"/,
    );
  });

  it('a _CMD connection is asked of a pod of the newer version; it is never logged, in an Event or in an audit record', async () => {
    e2e = await startE2E();
    audit = await createTestDatabase('audit');
    const password = decodeURIComponent(new URL(e2e.db.url).password);
    expect(password.length).toBeGreaterThan(7);
    const s: ReleaseSpec = {
      release: 'cmd',
      namespace: 'cmd',
      version: '3.1.0',
      components: ['api-server', 'scheduler', 'statsd'],
      cronJobs: false,
    };
    await e2e.installRelease(s);
    await createSecret(e2e, s.namespace, 'vault-agent-db', { url: e2e.db.url });
    await renderWithEnv(e2e, s, [
      { name: `${CONN}_CMD`, value: 'printenv VAULT_DB_URL' },
      { name: 'VAULT_DB_URL', valueFrom: { secretKeyRef: { name: 'vault-agent-db', key: 'url' } } },
    ]);
    await e2e.admin.delete('Secret', s.namespace, 'cmd-metadata', 0);
    const guard = await e2e.startGuard(undefined, ['--audit-database-url', audit.url]);
    await upgradeRelease(e2e, s, '3.0.2', { hook: 'none' });
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    const logs = guard.logs.join('\n');
    expect(logs).toContain('a pod of the newer version, `airflow config get-value database sql_alchemy_conn`');

    const pool = new pg.Pool({ connectionString: audit.url, max: 1 });
    try {
      const records = await waitFor(
        'audit records of the operation',
        async () => {
          const rows = await queryAuditRows(pool, { release: s.release }).catch(() => []);
          // Every admission and step record of the downgrade, down to the release step's end.
          const released = rows.some(
            (r) => r.record.kind === 'operation-step' && r.record.step === 'release' && r.record.event === 'end',
          );
          return released && rows.some((r) => r.record.kind === 'admission') ? rows : undefined;
        },
        15_000,
        100,
      );
      const events = eventsOf(e2e, s.namespace).map((ev) => ev.message);
      for (const [where, text] of [
        ['guard log', logs],
        ['Events', events.join('\n')],
        ['audit records', JSON.stringify(records)],
      ] as const) {
        expect(text.includes(password), `password in ${where}`).toBe(false);
        expect(text.includes(e2e.db.url), `connection in ${where}`).toBe(false);
      }
    } finally {
      await pool.end();
    }
  });
});

describe('the community chart (airflow-helm/charts)', () => {
  /** As the chart renders a release: dumb-init -- /entrypoint, its config Secret, check-db, wait-for-db-migrations, db-migrations. */
  function communityWorkload(release: string, component: string, image: string): KubeObject {
    const obj = chartWorkload({
      kind: 'Deployment',
      component,
      release,
      namespace: release,
      image,
      scheme: 'community',
      containerName: component === 'db-migrations' ? component : `airflow-${component}`,
    }) as KubeObject;
    const spec = (obj.spec as { template: { spec: Record<string, unknown> } }).template.spec;
    const shared = {
      image,
      imagePullPolicy: 'IfNotPresent',
      command: ['/usr/bin/dumb-init', '--', '/entrypoint'],
      envFrom: [{ secretRef: { name: `${release}-config` } }],
      env: [
        {
          name: 'DATABASE_PASSWORD',
          valueFrom: { secretKeyRef: { name: `${release}-postgresql`, key: 'postgresql-password' } },
        },
      ],
    };
    const main = (spec.containers as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
    const args = {
      scheduler: ['bash', '-c', 'exec airflow scheduler -n -1'],
      web: ['bash', '-c', 'exec airflow webserver'],
      triggerer: ['bash', '-c', 'exec airflow triggerer'],
      'db-migrations': ['python', '-u', '/mnt/scripts/db_migrations.py'],
    }[component];
    spec.containers = [{ ...shared, name: main.name, args }];
    spec.initContainers = [
      { ...shared, name: 'check-db', args: ['bash', '-c', 'exec timeout 60s airflow db check'] },
      ...(component === 'db-migrations'
        ? []
        : [
            {
              ...shared,
              name: 'wait-for-db-migrations',
              args: ['bash', '-c', 'exec airflow db check-migrations -t 60'],
            },
          ]),
    ];
    return obj;
  }

  const COMPONENTS = ['scheduler', 'web', 'triggerer', 'db-migrations'];

  function communityReady(e: E2E, release: string, tag: string): boolean {
    const pods = podsOf(e.sim, release, release);
    return COMPONENTS.every((component) => {
      const mine = pods.filter((p) => p.metadata.labels?.component === component);
      return (
        mine.length === 1 &&
        mine.every((p) => {
          const status = p.status as { phase?: string; conditions?: Array<{ type: string; status: string }> };
          const image = (p.spec as { containers: Array<{ image: string }> }).containers[0]?.image;
          return (
            !p.metadata.deletionTimestamp &&
            image === `apache/airflow:${tag}` &&
            status.phase === 'Running' &&
            (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
          );
        })
      );
    });
  }

  it.each([
    ['drain-first', ['open', 'confirm', 'quiesce', 'downgrade', 'verify', 'drain', 'release']],
    ['downgrade-first', ['open', 'confirm', 'downgrade', 'verify', 'drain', 'release']],
  ] as const)(
    '2.9.3 -> 2.8.4 (%s): DATABASE_* settings and a _CMD connection, a db-migrations Deployment',
    async (order, steps) => {
      e2e = await startE2E({ order });
      const release = 'community';
      const url = new URL(e2e.db.url);
      await e2e.admin.create('Namespace', undefined, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: release },
      });
      await createSecret(e2e, release, `${release}-config`, {
        DATABASE_HOST: url.hostname,
        DATABASE_PORT: url.port,
        DATABASE_DB: url.pathname.slice(1),
        DATABASE_USER: decodeURIComponent(url.username),
        DATABASE_PROPERTIES: '',
        DATABASE_SQLALCHEMY_CMD:
          'echo -n "postgresql://$(eval $DATABASE_USER_CMD):$(eval $DATABASE_PASSWORD_CMD)@${DATABASE_HOST}:${DATABASE_PORT}/${DATABASE_DB}${DATABASE_PROPERTIES}"',
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: 'bash -c \'eval "$DATABASE_SQLALCHEMY_CMD"\'',
      });
      await createSecret(e2e, release, `${release}-postgresql`, {
        'postgresql-password': decodeURIComponent(url.password),
      });
      // A fresh database: the db-migrations Deployment migrates it, the other pods wait for it.
      for (const component of COMPONENTS)
        await e2e.admin.create(
          'Deployment',
          release,
          communityWorkload(release, component, 'apache/airflow:2.9.3-python3.11'),
        );
      await waitFor(
        'community release Ready on 2.9.3',
        () => communityReady(e2e!, release, '2.9.3-python3.11'),
        60_000,
        100,
      );
      expect(await e2e.revision()).toBe(headOf('2.9.3'));

      const guard = await e2e.startGuard();
      for (const component of COMPONENTS)
        await setImage(e2e, 'Deployment', release, `${release}-${component}`, '2.8.4-python3.11');
      const op = await waitFor(
        'operation done',
        () => e2e!.operation(release, release)?.phase === 'done' && e2e!.operation(release, release),
        60_000,
        100,
      );
      await waitFor(
        'community release Ready on 2.8.4',
        () => communityReady(e2e!, release, '2.8.4-python3.11'),
        60_000,
        100,
      );
      expect(op).toMatchObject({ fromVersion: '2.9.3', toVersion: '2.8.4', toRevision: headOf('2.8.4') });
      expect(stepSequence(op)).toEqual(steps);
      expect(await e2e.revision()).toBe(headOf('2.8.4'));
      expect(guard.logs.join('\n')).toMatch(
        /"source":"the community chart's database settings \(env DATABASE_HOST, DATABASE_DB, DATABASE_USER, DATABASE_PASSWORD\)","msg":"metadata database connection found"/,
      );
      await expectNoViolations(e2e);
    },
  );
});

describe("Bitnami's chart", () => {
  it('2.10.5 -> 2.9.3: the connection composed from AIRFLOW_DATABASE_*, no <release>-metadata Secret', async () => {
    e2e = await startE2E({ order: 'drain-first' });
    const release = 'bitnami';
    const url = new URL(e2e.db.url);
    await e2e.admin.create('Namespace', undefined, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: release },
    });
    await createSecret(e2e, release, `${release}-postgresql`, { password: decodeURIComponent(url.password) });
    // The schema at 2.10.5, as Bitnami's setup would leave it.
    await setRevision(e2e.db.url, headOf('2.10.5'));
    const components = ['scheduler', 'web', 'triggerer'];
    const image = (tag: string) => `bitnami/airflow:${tag}-debian-12-r3`;
    for (const component of components) {
      const obj = chartWorkload({
        kind: 'Deployment',
        component,
        release,
        namespace: release,
        image: image('2.10.5'),
        scheme: 'bitnami',
        containerName: `airflow-${component}`,
      }) as KubeObject;
      const spec = (obj.spec as { template: { spec: Record<string, unknown> } }).template.spec;
      const main = (spec.containers as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
      delete main.args;
      main.env = [
        { name: 'AIRFLOW_DATABASE_HOST', value: url.hostname },
        { name: 'AIRFLOW_DATABASE_PORT_NUMBER', value: url.port },
        { name: 'AIRFLOW_DATABASE_NAME', value: url.pathname.slice(1) },
        { name: 'AIRFLOW_DATABASE_USERNAME', value: decodeURIComponent(url.username) },
        {
          name: 'AIRFLOW_DATABASE_PASSWORD',
          valueFrom: { secretKeyRef: { name: `${release}-postgresql`, key: 'password' } },
        },
      ];
      delete spec.initContainers;
      await e2e.admin.create('Deployment', release, obj);
    }
    const ready = (tag: string) =>
      components.every((component) => {
        // Bitnami's pods carry no `release` label: every pod of the namespace.
        const mine = e2e!.sim.store
          .list(RESOURCES.pods, release)
          .items.filter(
            (p) => p.metadata.labels?.['app.kubernetes.io/component'] === component && !p.metadata.deletionTimestamp,
          );
        return (
          mine.length === 1 &&
          mine.every((p) => {
            const status = p.status as { phase?: string; conditions?: Array<{ type: string; status: string }> };
            return (
              (p.spec as { containers: Array<{ image: string }> }).containers[0]?.image === image(tag) &&
              status.phase === 'Running' &&
              (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
            );
          })
        );
      });
    await waitFor('Bitnami release Ready on 2.10.5', () => ready('2.10.5'), 30_000, 100);
    const guard = await e2e.startGuard();
    for (const component of components)
      await e2e.admin.rest.request('PATCH', `/apis/apps/v1/namespaces/${release}/deployments/${release}-${component}`, {
        body: {
          spec: { template: { spec: { containers: [{ name: `airflow-${component}`, image: image('2.9.3') }] } } },
        },
        contentType: 'application/strategic-merge-patch+json',
      });
    const op = await waitFor(
      'operation done',
      () => e2e!.operation(release, release)?.phase === 'done' && e2e!.operation(release, release),
      60_000,
      100,
    );
    await waitFor('Bitnami release Ready on 2.9.3', () => ready('2.9.3'), 60_000, 100);
    expect(op).toMatchObject({ fromVersion: '2.10.5', toVersion: '2.9.3', toRevision: headOf('2.9.3') });
    expect(stepSequence(op)).toEqual(['open', 'confirm', 'quiesce', 'downgrade', 'verify', 'drain', 'release']);
    expect(await e2e.revision()).toBe(headOf('2.9.3'));
    expect(guard.logs.join('\n')).toMatch(
      /"source":"the Bitnami chart's database settings[^"]*","msg":"metadata database connection found"/,
    );
    await expectNoViolations(e2e);
  });
});
