import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createAirflowRuntime,
  ExecConnectionDropped,
  ImageCatalog,
  type AirflowRuntime,
} from '../../../../testbed/sim/airflow/index.js';
import type { ContainerStart, KubeObject } from '../../../../testbed/sim/types.js';
import { createTestDatabase, type TestDatabase } from '../../../support/postgres.js';
import { getRevision, recordingIO, setRevision, waitFor } from './helpers.js';

const V300 = '29ce7909c52b';
const V303 = 'fe199e1abd77';
const V310 = 'cc92b33c6709';
const NS = 'airflow';

let db: TestDatabase;
let runtime: AirflowRuntime;
let secrets: Map<string, string>;

type Container = ContainerStart['container'];

const metadataEnv = [
  {
    name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN',
    valueFrom: { secretKeyRef: { name: 'airflow-metadata', key: 'connection' } },
  },
];

function container(name: string, version: string, args?: string[], extra: Record<string, unknown> = {}): Container {
  return { name, image: `apache/airflow:${version}`, ...(args ? { args } : {}), env: metadataEnv, ...extra };
}

function pod(name: string, containers: Container[], initContainers: Container[] = []): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { release: 'airflow', tier: 'airflow' } },
    spec: { containers, initContainers },
  };
}

function startMain(p: KubeObject, index = 0) {
  const spec = (p.spec as { containers: Container[] }).containers[index] as Container;
  return runtime.start({ namespace: NS, pod: p, container: spec, role: 'main' });
}

function startInit(p: KubeObject, index = 0) {
  const spec = (p.spec as { initContainers: Container[] }).initContainers[index] as Container;
  return runtime.start({ namespace: NS, pod: p, container: spec, role: 'init' });
}

beforeAll(async () => {
  db = await createTestDatabase('sim_runtime');
});
afterAll(async () => {
  await db.drop();
});
beforeEach(() => {
  secrets = new Map([[`${NS}/airflow-metadata/connection`, db.url]]);
  runtime = createAirflowRuntime({
    resolveSecret: (namespace, name, key) => secrets.get(`${namespace}/${name}/${key}`),
    stepDurationMs: 2,
    checkIntervalMs: 20,
    readyDelayMs: 30,
    secondMs: 20,
    taskDurationMs: 50,
  });
});
afterEach(async () => {
  await runtime.close();
});

describe('containers of Airflow pods', () => {
  it('wait-for-airflow-migrations blocks until the schema matches its image, then exits 0', async () => {
    await setRevision(db.url, V300);
    const p = pod(
      'airflow-scheduler-1',
      [container('scheduler', '3.1.0', ['bash', '-c', 'exec airflow scheduler'])],
      [
        container('wait-for-airflow-migrations', '3.1.0', [
          'airflow',
          'db',
          'check-migrations',
          '--migration-wait-timeout=60',
        ]),
      ],
    );
    const init = startInit(p);
    let done = false;
    void init.exited.then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(done).toBe(false);
    const job = pod('airflow-run-airflow-migrations-x', [
      container('run-airflow-migrations', '3.1.0', ['bash', '-c', 'exec \\\nairflow db migrate']),
    ]);
    const migrate = startMain(job);
    expect(await migrate.exited).toEqual({ exitCode: 0, reason: 'Completed' });
    expect(await getRevision(db.url)).toBe(V310);
    expect(await init.exited).toEqual({ exitCode: 0, reason: 'Completed' });
  });

  it('wait-for-airflow-migrations of an older image fails after its timeout on a newer schema', async () => {
    await setRevision(db.url, V310);
    const p = pod(
      'airflow-scheduler-2',
      [container('scheduler', '3.0.2')],
      [
        container('wait-for-airflow-migrations', '3.0.2', [
          'airflow',
          'db',
          'check-migrations',
          '--migration-wait-timeout=2',
        ]),
      ],
    );
    expect(await startInit(p).exited).toEqual({ exitCode: 1, reason: 'Error' });
  });

  it('a private-tag image runs the version its labels declare, in the official dumb-init -- /entrypoint form', async () => {
    const images = new ImageCatalog();
    const image = 'registry.example.com/catalog-airflow-airflow:build-4711';
    images.declare(image, { 'org.apache.airflow.version': '3.1.0' });
    const labelled = createAirflowRuntime({
      resolveSecret: (namespace, name, key) => secrets.get(`${namespace}/${name}/${key}`),
      stepDurationMs: 2,
      readyDelayMs: 30,
      secondMs: 20,
      images,
    });
    try {
      await setRevision(db.url, V300);
      const entrypoint = { command: ['/usr/bin/dumb-init', '--', '/entrypoint'], image };
      const job = pod('private-migrate', [
        container('run-airflow-migrations', '3.1.0', ['bash', '-c', 'exec airflow db migrate'], entrypoint),
      ]);
      const spec = (job.spec as { containers: Container[] }).containers[0] as Container;
      expect(await labelled.start({ namespace: NS, pod: job, container: spec, role: 'main' }).exited).toEqual({
        exitCode: 0,
        reason: 'Completed',
      });
      expect(await getRevision(db.url)).toBe(V310);
      // Without the catalog entry the same image is no Airflow image: its `airflow` does not exist.
      const io = recordingIO();
      const plain = await runtime.exec(
        {
          namespace: NS,
          pod: job,
          container: 'run-airflow-migrations',
          command: ['airflow', 'version'],
          stdin: false,
          tty: false,
        },
        io,
      );
      expect(plain.exitCode).toBe(127);
      const known = recordingIO();
      expect(
        await labelled.exec(
          {
            namespace: NS,
            pod: job,
            container: 'run-airflow-migrations',
            command: ['airflow', 'version'],
            stdin: false,
            tty: false,
          },
          known,
        ),
      ).toEqual({ exitCode: 0 });
      expect(known.out()).toBe('3.1.0\n');
    } finally {
      await labelled.close();
    }
  });

  it("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: echo, printenv and the community chart's DATABASE_* command", async () => {
    await setRevision(db.url, V310);
    const url = new URL(db.url);
    secrets.set(`${NS}/airflow-postgresql/postgresql-password`, decodeURIComponent(url.password));
    const forms: Array<Array<Record<string, unknown>>> = [
      [{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', value: `echo -n ${db.url}` }],
      [
        { name: 'CONN', value: db.url },
        { name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', value: 'printenv CONN' },
      ],
      [
        { name: 'DATABASE_HOST', value: url.hostname },
        { name: 'DATABASE_PORT', value: url.port },
        { name: 'DATABASE_DB', value: url.pathname.slice(1) },
        { name: 'DATABASE_USER', value: decodeURIComponent(url.username) },
        {
          name: 'DATABASE_PASSWORD',
          valueFrom: { secretKeyRef: { name: 'airflow-postgresql', key: 'postgresql-password' } },
        },
        { name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', value: 'bash -c \'eval "$DATABASE_SQLALCHEMY_CMD"\'' },
      ],
    ];
    for (const env of forms) {
      const p = pod('cmd-conn', [{ name: 'scheduler', image: 'apache/airflow:3.1.0', env }]);
      const io = recordingIO();
      const result = await runtime.exec(
        {
          namespace: NS,
          pod: p,
          container: 'scheduler',
          command: ['airflow', 'db', 'check'],
          stdin: false,
          tty: false,
        },
        io,
      );
      expect(result, JSON.stringify(env.at(-1))).toEqual({ exitCode: 0 });
      expect(io.out()).toContain('Connection successful.');
    }
    const unsupported = pod('cmd-conn', [
      {
        name: 'scheduler',
        image: 'apache/airflow:3.1.0',
        env: [{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', value: 'vault read -field=url secret/airflow' }],
      },
    ]);
    const io = recordingIO();
    expect(
      (
        await runtime.exec(
          {
            namespace: NS,
            pod: unsupported,
            container: 'scheduler',
            command: ['airflow', 'db', 'check'],
            stdin: false,
            tty: false,
          },
          io,
        )
      ).exitCode,
    ).toBe(1);
    expect(io.err()).toContain('cannot run this SQL_ALCHEMY_CONN_CMD');
  });

  it("the community chart's layout: DATABASE_* and the _CMD from its config Secret (envFrom), check-db and wait-for-db-migrations", async () => {
    await setRevision(db.url, V310);
    const url = new URL(db.url);
    const config: Record<string, string> = {
      DATABASE_HOST: url.hostname,
      DATABASE_PORT: url.port,
      DATABASE_DB: url.pathname.slice(1),
      DATABASE_USER: decodeURIComponent(url.username),
      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: 'bash -c \'eval "$DATABASE_SQLALCHEMY_CMD"\'',
    };
    for (const [key, value] of Object.entries(config)) secrets.set(`${NS}/community-config/${key}`, value);
    secrets.set(`${NS}/community-postgresql/postgresql-password`, decodeURIComponent(url.password));
    const shared = {
      image: 'apache/airflow:3.1.0',
      command: ['/usr/bin/dumb-init', '--'],
      envFrom: [{ secretRef: { name: 'community-config' } }],
      env: [
        {
          name: 'DATABASE_PASSWORD',
          valueFrom: { secretKeyRef: { name: 'community-postgresql', key: 'postgresql-password' } },
        },
      ],
    };
    const p = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'community-scheduler-1',
        namespace: NS,
        labels: { app: 'airflow', component: 'scheduler', release: 'community' },
      },
      spec: {
        initContainers: [
          { name: 'check-db', ...shared, args: ['bash', '-c', 'exec timeout 16s airflow db check'] },
          { name: 'wait-for-db-migrations', ...shared, args: ['bash', '-c', 'exec airflow db check-migrations -t 60'] },
        ],
        containers: [{ name: 'airflow-scheduler', ...shared, args: ['bash', '-c', 'exec airflow scheduler -n -1'] }],
      },
    } as KubeObject;
    expect(await startInit(p, 0).exited).toEqual({ exitCode: 0, reason: 'Completed' });
    expect(await startInit(p, 1).exited).toEqual({ exitCode: 0, reason: 'Completed' });
  });

  it("the community chart's db-migrations Deployment migrates up to its head, is Ready there, and keeps it there", async () => {
    await setRevision(db.url, V300);
    const migrator = container('db-migrations', '3.1.0', ['python', '-u', '/mnt/scripts/db_migrations.py'], {
      command: ['/usr/bin/dumb-init', '--'],
    });
    const p = pod('community-db-migrations-1', [migrator]);
    const handle = startMain(p);
    expect(handle.ready()).toBe(false);
    await waitFor(() => handle.ready(), 5000, 'migrator ready');
    expect(await getRevision(db.url)).toBe(V310);
    // Someone moves the schema back while it runs: it migrates it up again, like the real script.
    await setRevision(db.url, V303);
    await waitFor(async () => (await getRevision(db.url)) === V310, 5000, 'migrated up again');
    // A schema newer than its image: alembic cannot locate the revision, the script dies.
    await setRevision(db.url, '1d6611b6ab7c');
    expect(await handle.exited).toEqual({ exitCode: 1, reason: 'Error' });
  });

  it("Bitnami's layout: the connection from AIRFLOW_DATABASE_* (password from its Secret)", async () => {
    await setRevision(db.url, V310);
    const url = new URL(db.url);
    secrets.set(`${NS}/bitnami-postgresql/password`, decodeURIComponent(url.password));
    const env = [
      { name: 'AIRFLOW_DATABASE_HOST', value: url.hostname },
      { name: 'AIRFLOW_DATABASE_PORT_NUMBER', value: url.port },
      { name: 'AIRFLOW_DATABASE_NAME', value: url.pathname.slice(1) },
      { name: 'AIRFLOW_DATABASE_USERNAME', value: decodeURIComponent(url.username) },
      {
        name: 'AIRFLOW_DATABASE_PASSWORD',
        valueFrom: { secretKeyRef: { name: 'bitnami-postgresql', key: 'password' } },
      },
    ];
    const p = pod('bitnami-scheduler-1', [
      { name: 'airflow-scheduler', image: 'bitnami/airflow:3.1.0-debian-12-r0', env, args: ['airflow', 'db', 'check'] },
    ]);
    expect(await startMain(p).exited).toEqual({ exitCode: 0, reason: 'Completed' });
    const io = recordingIO();
    const result = await runtime.exec(
      {
        namespace: NS,
        pod: p,
        container: 'airflow-scheduler',
        command: ['airflow', 'config', 'get-value', 'database', 'sql_alchemy_conn'],
        stdin: false,
        tty: false,
      },
      io,
    );
    expect(result.exitCode).toBe(0);
    expect(new URL(io.out().trim()).pathname).toBe(url.pathname);
  });

  it("the chart's create-user job completes", async () => {
    const job = pod('airflow-create-user-z', [
      container('create-user', '3.1.0', [
        'bash',
        '-c',
        'exec \\\nairflow users create "$@"',
        '--',
        '-r',
        'Admin',
        '-u',
        'admin',
      ]),
    ]);
    expect(await startMain(job).exited).toEqual({ exitCode: 0, reason: 'Completed' });
  });

  it('a container command with shell syntax the simulation cannot run fails clearly', async () => {
    const lines: string[] = [];
    const logging = createAirflowRuntime({ resolveSecret: () => undefined, log: (line) => lines.push(line) });
    const odd = pod('odd', [container('odd', '3.1.0', ['bash', '-c', 'airflow db migrate && airflow version'])]);
    const spec = (odd.spec as { containers: Container[] }).containers[0] as Container;
    expect(await logging.start({ namespace: NS, pod: odd, container: spec, role: 'main' }).exited).toEqual({
      exitCode: 2,
      reason: 'Error',
    });
    expect(lines.join('\n')).toContain("unsupported shell syntax '&'");
    await logging.close();
  });

  it('the migration job of an older image fails on a newer schema', async () => {
    await setRevision(db.url, V310);
    const job = pod('airflow-run-airflow-migrations-y', [container('run-airflow-migrations', '3.0.2')]);
    expect((await startMain(job).exited).exitCode).toBe(1);
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('servers run until stopped and become ready after the delay; non-Airflow containers just run', async () => {
    await setRevision(db.url, V310);
    const api = startMain(
      pod('airflow-api-server-1', [container('api-server', '3.1.0', ['bash', '-c', 'exec airflow api-server'])]),
    );
    const bouncer = runtime.start({
      namespace: NS,
      pod: pod('airflow-pgbouncer-1', [
        { name: 'pgbouncer', image: 'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1' },
      ]),
      container: { name: 'pgbouncer', image: 'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1' },
      role: 'main',
    });
    expect(api.ready()).toBe(false);
    await waitFor(() => api.ready() && bouncer.ready(), 2000, 'readiness');
    expect(runtime.running().map((c) => c.pod)).toEqual(['airflow-api-server-1']);
    await api.stop();
    expect(await api.exited).toEqual({ exitCode: 0, reason: 'Completed' });
    expect(api.ready()).toBe(false);
    expect(runtime.running()).toEqual([]);
    await bouncer.stop();
  });

  it('slow-start delays readiness of the matching pod only', async () => {
    await setRevision(db.url, V310);
    runtime.faults.add({ pod: 'airflow-scheduler-slow*', fault: { kind: 'slow-start', delayMs: 400 } });
    const slow = startMain(pod('airflow-scheduler-slow-1', [container('scheduler', '3.1.0')]));
    const fast = startMain(pod('airflow-scheduler-fast-1', [container('scheduler', '3.1.0')]));
    await waitFor(() => fast.ready(), 2000, 'fast pod');
    expect(slow.ready()).toBe(false);
    await waitFor(() => slow.ready(), 2000, 'slow pod');
  });

  it('records an older pod against a newer schema as a violation, once per container and revision', async () => {
    await setRevision(db.url, V310);
    const seen: string[] = [];
    runtime.violations.onViolation((v) => seen.push(v.pod));
    const old = startMain(
      pod('airflow-scheduler-old', [container('scheduler', '3.0.2', ['bash', '-c', 'exec airflow scheduler'])]),
    );
    const current = startMain(pod('airflow-scheduler-new', [container('scheduler', '3.1.0')]));
    await waitFor(() => runtime.violations.list().length > 0, 2000, 'a violation');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await runtime.sweep();
    expect(runtime.violations.list()).toEqual([
      expect.objectContaining({
        kind: 'unknown-schema',
        namespace: NS,
        pod: 'airflow-scheduler-old',
        container: 'scheduler',
        imageVersion: '3.0.2',
        imageHead: V300,
        dbRevision: V310,
      }),
    ]);
    expect(seen).toEqual(['airflow-scheduler-old']);
    await old.stop();
    await current.stop();
    runtime.violations.clear();
    expect(runtime.violations.list()).toEqual([]);
  });

  it('reports a newer pod on an older schema as stale-schema exposure with its duration, not a violation', async () => {
    await setRevision(db.url, V310);
    const api = startMain(pod('airflow-api-server-2', [container('api-server', '3.1.0')]));
    await runtime.sweep();
    const exec = await runtime.exec(
      {
        namespace: NS,
        pod: pod('airflow-api-server-2', [container('api-server', '3.1.0')]),
        container: 'api-server',
        command: ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y'],
        stdin: false,
        tty: false,
      },
      recordingIO(),
    );
    expect(exec.exitCode).toBe(0);
    await runtime.sweep();
    await new Promise((resolve) => setTimeout(resolve, 60));
    await api.stop();
    expect(runtime.violations.list()).toEqual([]);
    const [exposure, ...more] = runtime.violations.exposures();
    expect(more).toEqual([]);
    expect(exposure).toMatchObject({
      kind: 'stale-schema',
      pod: 'airflow-api-server-2',
      imageVersion: '3.1.0',
      dbRevision: V300,
    });
    expect(exposure?.until).toBeDefined();
    expect(exposure?.durationMs).toBeGreaterThanOrEqual(50);
  });

  it('task pods (airflow tasks run) read the schema and complete', async () => {
    await setRevision(db.url, V310);
    const task = startMain(
      pod('example-task-abc', [container('base', '3.0.2', ['airflow', 'tasks', 'run', 'dag', 'task', 'run_id'])]),
    );
    expect(await task.exited).toEqual({ exitCode: 0, reason: 'Completed' });
    expect(runtime.violations.list().map((v) => v.pod)).toEqual(['example-task-abc']);
  });

  it('a task pod that runs no time at all still reads the schema before it completes (found under load)', async () => {
    await runtime.close();
    runtime = createAirflowRuntime({
      resolveSecret: (namespace, name, key) => secrets.get(`${namespace}/${name}/${key}`),
      checkIntervalMs: 20,
      taskDurationMs: 0,
    });
    await setRevision(db.url, V310);
    const task = startMain(
      pod('example-task-quick', [container('base', '3.0.2', ['airflow', 'tasks', 'run', 'dag', 'task', 'run_id'])]),
    );
    expect(await task.exited).toEqual({ exitCode: 0, reason: 'Completed' });
    expect(runtime.violations.list().map((v) => v.pod)).toEqual(['example-task-quick']);
  });

  it('finds the connection via env value, envFrom, or the chart metadata Secret', async () => {
    await setRevision(db.url, V300);
    const base = { name: 'scheduler', image: 'apache/airflow:3.0.2' };
    secrets.set(`${NS}/airflow-env/AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`, db.url);
    const variants: Container[] = [
      { ...base, env: [{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: db.url }] },
      { ...base, env: [{ name: 'AIRFLOW__CORE__SQL_ALCHEMY_CONN', value: db.url }] },
      { ...base, envFrom: [{ secretRef: { name: 'airflow-env' } }] },
      { ...base },
    ];
    for (const spec of variants) {
      const r = await runtime.exec(
        {
          namespace: NS,
          pod: pod('p', [spec]),
          container: 'scheduler',
          command: ['airflow', 'db', 'check'],
          stdin: false,
          tty: false,
        },
        recordingIO(),
      );
      expect(r.exitCode).toBe(0);
    }
    secrets.clear();
    const io = recordingIO();
    const r = await runtime.exec(
      {
        namespace: NS,
        pod: pod('p', [base]),
        container: 'scheduler',
        command: ['airflow', 'db', 'check'],
        stdin: false,
        tty: false,
      },
      io,
    );
    expect(r.exitCode).toBe(1);
    expect(io.err()).toContain('no metadata database configured');
  });
});

describe('exec through the runtime', () => {
  const apiPod = () => pod('airflow-api-server-7d9', [container('api-server', '3.1.0')]);
  const downgrade = ['airflow', 'db', 'downgrade', '--to-version', '3.0.2', '--yes'];
  const request = (command: string[], target = apiPod(), name = 'api-server') => ({
    namespace: NS,
    pod: target,
    container: name,
    command,
    stdin: false,
    tty: false,
  });

  it("runs the CLI with the container's image and env", async () => {
    await setRevision(db.url, V310);
    const io = recordingIO();
    expect(await runtime.exec(request(downgrade), io)).toEqual({ exitCode: 0 });
    expect(io.out()).toContain('Downgrade complete');
    expect(await getRevision(db.url)).toBe(V300);
  });

  it('refuses unknown containers and answers non-Airflow images like a shell', async () => {
    expect((await runtime.exec(request(['airflow', 'version'], apiPod(), 'nope'), recordingIO())).exitCode).toBe(1);
    const busybox = pod('tools', [{ name: 'tools', image: 'busybox:1.36' }]);
    const io = recordingIO();
    expect(await runtime.exec(request(['echo', 'hi'], busybox, 'tools'), io)).toEqual({ exitCode: 0 });
    expect(io.out()).toBe('hi\n');
    expect((await runtime.exec(request(['airflow', 'version'], busybox, 'tools'), recordingIO())).exitCode).toBe(127);
  });

  it('injected failure: exits non-zero with the message, a limited number of times', async () => {
    await setRevision(db.url, V310);
    runtime.faults.add({
      pod: /api-server/,
      command: 'db downgrade',
      fault: { kind: 'exec-fail', exitCode: 3, message: 'boom' },
      times: 1,
    });
    const io = recordingIO();
    expect(await runtime.exec(request(downgrade), io)).toEqual({ exitCode: 3, message: 'boom' });
    expect(io.err()).toBe('boom\n');
    expect(await getRevision(db.url)).toBe(V310);
    expect((await runtime.exec(request(['airflow', 'version']), recordingIO())).exitCode).toBe(0);
    expect((await runtime.exec(request(downgrade), recordingIO())).exitCode).toBe(0);
  });

  it('injected hang: never completes until the client goes away', async () => {
    await setRevision(db.url, V310);
    runtime.faults.add({ fault: { kind: 'exec-hang' } });
    const io = recordingIO();
    let settled = false;
    const running = runtime.exec(request(downgrade), io).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(settled).toBe(false);
    io.abort();
    expect((await running).exitCode).toBe(137);
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('injected halfway stop: exit 1, drop without status, or hang, each leaving fe199e1abd77', async () => {
    for (const then of ['exit', 'drop', 'hang'] as const) {
      await setRevision(db.url, V310);
      runtime.faults.clear();
      runtime.faults.add({ fault: { kind: 'exec-halfway', steps: 1, then } });
      const io = recordingIO();
      const running = runtime.exec(request(downgrade), io);
      if (then === 'exit') expect((await running).exitCode).toBe(1);
      if (then === 'drop') await expect(running).rejects.toBeInstanceOf(ExecConnectionDropped);
      if (then === 'hang') {
        await io.waitForOutput(`-> ${V303}, Downgrade to Airflow 3.0.3 schema`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        io.abort();
        expect((await running).exitCode).toBe(137);
      }
      expect(await getRevision(db.url), then).toBe(V303);
    }
  });

  it('a slow downgrade keeps the client waiting; an interactive prompt reads stdin', async () => {
    await setRevision(db.url, V310);
    const io = recordingIO('open');
    const running = runtime.exec({ ...request(['airflow', 'db', 'downgrade', '-n', '3.0.2']), stdin: true }, io);
    await io.waitForOutput('Proceed? (y/n)');
    io.abort();
    expect((await running).exitCode).toBe(137);
    expect(await getRevision(db.url)).toBe(V310);
  });
});
