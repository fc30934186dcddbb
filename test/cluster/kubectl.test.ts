// What a user does first with `npm run cluster`: the pinned kubectl 1.35 against the real control
// plane (v1.36 server) and our node agent: version, namespaces, secrets, apply, rollouts (init
// containers honoured), scale, set image, exec (exit codes, stdin end-of-file) and delete.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartWorkload } from '../../testbed/sim/chart.js';
import { readAlembicRevision } from '../../src/db/alembic.js';
import { headOf } from '../e2e/harness.js';
import { KUBECTL_ENV } from '../support/kube-tools-env.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();
let db: TestDatabase | undefined;
let dir = '';
let kubeconfigPath = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adg-kubectl-'));
  db = await createTestDatabase('kubectl');
  kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, real.cluster().adminKubeconfig, { mode: 0o600 });
});

afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** kubectl as a child process; asynchronous, because the node agent runs in this process's event loop. */
function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const kubectlPath = process.env[KUBECTL_ENV];
  if (!kubectlPath) throw new Error(`${KUBECTL_ENV} is not set (vitest global setup)`);
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath, ['--kubeconfig', kubeconfigPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

async function ok(args: string[], input?: string): Promise<string> {
  const result = await kubectl(args, input);
  expect(result.code, `kubectl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

describe('kubectl 1.35 against the real control plane', () => {
  it('version, namespace, secret, apply, rollout, scale, set image, exec, delete', async () => {
    const version = JSON.parse(await ok(['version', '-o', 'json'])) as {
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.36\.\d+$/);
    expect(version.serverVersion).toMatchObject({ major: '1', minor: '36' });

    expect(await ok(['create', 'namespace', 'smoke'])).toContain('namespace/smoke created');
    expect(
      await ok([
        '-n',
        'smoke',
        'create',
        'secret',
        'generic',
        'smoke-metadata',
        `--from-literal=connection=${db!.url}`,
      ]),
    ).toContain('secret/smoke-metadata created');
    const serviceAccounts = ['run-airflow-migrations', 'api-server'].map((c) => ({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: `smoke-${c}`, namespace: 'smoke' },
    }));
    await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: serviceAccounts }));

    // The API server pods wait in their init container until the schema matches their image.
    const api = chartWorkload({
      kind: 'Deployment',
      component: 'api-server',
      release: 'smoke',
      namespace: 'smoke',
      version: '3.1.0',
    });
    expect(await ok(['apply', '-f', '-'], JSON.stringify(api))).toContain('deployment.apps/smoke-api-server created');
    const waiting = await until(async () => {
      const pods = JSON.parse(await ok(['-n', 'smoke', 'get', 'pods', '-l', 'component=api-server', '-o', 'json'])) as {
        items: Array<{
          spec: { nodeName?: string };
          status: { initContainerStatuses?: Array<{ state: { running?: unknown } }> };
        }>;
      };
      const pod = pods.items[0];
      return pod?.spec.nodeName && pod.status.initContainerStatuses?.[0]?.state.running ? pod : undefined;
    });
    expect(waiting.spec.nodeName).toBe('node-1');
    const migrate = chartWorkload({
      kind: 'Job',
      component: 'run-airflow-migrations',
      release: 'smoke',
      namespace: 'smoke',
      version: '3.1.0',
    });
    await ok(['apply', '-f', '-'], JSON.stringify(migrate));
    await ok(['-n', 'smoke', 'wait', '--for=condition=complete', 'job/smoke-run-airflow-migrations', '--timeout=120s']);
    expect((await readAlembicRevision(db!.url)).revision).toBe(headOf('3.1.0'));
    expect(await ok(['-n', 'smoke', 'rollout', 'status', 'deployment/smoke-api-server', '--timeout=120s'])).toContain(
      'successfully rolled out',
    );

    await ok(['-n', 'smoke', 'scale', 'deployment/smoke-api-server', '--replicas=2']);
    await ok(['-n', 'smoke', 'rollout', 'status', 'deployment/smoke-api-server', '--timeout=120s']);
    await ok([
      '-n',
      'smoke',
      'set',
      'image',
      'deployment/smoke-api-server',
      'api-server=apache/airflow:3.1.1',
      'wait-for-airflow-migrations=apache/airflow:3.1.1',
    ]);
    await ok(['-n', 'smoke', 'rollout', 'status', 'deployment/smoke-api-server', '--timeout=120s']);

    // exec through the API server into the node agent: the pod's image's CLI, the real database.
    expect((await ok(['-n', 'smoke', 'exec', 'deploy/smoke-api-server', '--', 'airflow', 'version'])).trim()).toBe(
      '3.1.1',
    );
    await ok([
      '-n',
      'smoke',
      'exec',
      'deploy/smoke-api-server',
      '-c',
      'api-server',
      '--',
      'airflow',
      'db',
      'check-migrations',
      '--migration-wait-timeout=1',
    ]);
    // stdin reaches the command and its end arrives: the confirmation prompt reads EOF, Python's EOFError exits 1.
    const eof = await kubectl(
      ['-n', 'smoke', 'exec', '-i', 'deploy/smoke-api-server', '--', 'airflow', 'db', 'downgrade', '-n', '3.0.2'],
      '',
    );
    expect(eof.stdout).toContain('Proceed? (y/n)');
    expect(eof.stderr).toContain('EOFError');
    expect(eof.code).toBe(1);
    const no = await kubectl(
      ['-n', 'smoke', 'exec', '-i', 'deploy/smoke-api-server', '--', 'airflow', 'db', 'downgrade', '-n', '3.0.2'],
      'n\n',
    );
    expect(no.stderr).toContain('Cancelled');
    expect(no.code).toBe(1);
    expect((await readAlembicRevision(db!.url)).revision).toBe(headOf('3.1.0'));
    const usage = await kubectl([
      '-n',
      'smoke',
      'exec',
      'deploy/smoke-api-server',
      '--',
      'airflow',
      'db',
      'no-such-command',
    ]);
    expect(usage.code).toBe(2);

    await ok(['-n', 'smoke', 'delete', 'deployment/smoke-api-server']);
    await ok(['-n', 'smoke', 'wait', '--for=delete', 'pod', '-l', 'component=api-server', '--timeout=120s']);
    expect(await ok(['delete', 'namespace', 'smoke', '--timeout=120s'])).toContain('namespace "smoke" deleted');
  });
});

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
