// `status`, `retry`, `abort` against the simulated cluster, with operation ConfigMaps seeded the way
// the coordinator writes them, and operator-action audit records in a real Postgres.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OperatorActionRecord } from '../../src/audit/records.js';
import { queryAudit } from '../../src/audit/store.js';
import { runOperatorAction, type OperatorCliOptions } from '../../src/cli/commands/retry.js';
import { runStatus } from '../../src/cli/commands/status.js';
import {
  newOperation,
  operationConfigMap,
  operationConfigMapName,
  parseOperation,
  withStep,
  type OperationState,
} from '../../src/coordinator/operation.js';
import { Cluster } from '../../src/k8s/cluster.js';
import { KubeRest } from '../../src/k8s/rest.js';
import { startSimCluster, type SimCluster } from '../../testbed/sim/cluster.js';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres.js';

let sim: SimCluster;
let admin: Cluster;
let rest: KubeRest;
let auditDb: TestDatabase;
let dir: string;
let kubeconfig: string;
const NOW = new Date('2025-06-01T12:00:00.000Z');

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

function seedOperation(o: {
  namespace: string;
  release: string;
  phase: OperationState['phase'];
  openedMinutesAgo: number;
  heldFrom?: OperationState['phase'];
  heldReason?: string;
  from?: string;
  to?: string;
}): OperationState {
  const opened = new Date(NOW.getTime() - o.openedMinutesAgo * 60_000);
  let op = newOperation({
    id: `dg-${Buffer.from(`${o.namespace}/${o.release}`).toString('hex').slice(0, 16)}`,
    namespace: o.namespace,
    release: o.release,
    fromVersion: o.from ?? '3.1.0',
    toVersion: o.to ?? '3.0.2',
    fromRevision: 'cc92b33c6709',
    toRevision: '29ce7909c52b',
    openedBy: 'system:serviceaccount:ci:deployer',
    now: opened,
  });
  const at = new Date(opened.getTime() + 30_000).toISOString();
  op = withStep(op, { step: 'confirm', outcome: 'ok', at, durationMs: 12, detail: 'alembic_version cc92b33c6709' });
  if (o.phase === 'drain' || o.heldFrom === 'drain')
    op = withStep(op, { step: 'downgrade', outcome: 'ok', at, durationMs: 48_000 });
  if (o.phase === 'held')
    op = withStep(op, { step: 'hold', outcome: 'held', at, durationMs: 0, detail: o.heldReason ?? 'held' });
  return {
    ...op,
    phase: o.phase,
    ...(o.heldFrom ? { heldFrom: o.heldFrom } : {}),
    ...(o.heldReason ? { heldReason: o.heldReason } : {}),
  };
}

async function store(op: OperationState): Promise<void> {
  await admin
    .create('Namespace', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: op.namespace } })
    .catch(() => undefined);
  const existing = await admin.find('ConfigMap', op.namespace, operationConfigMapName(op.release));
  if (existing) await admin.delete('ConfigMap', op.namespace, operationConfigMapName(op.release));
  await admin.create('ConfigMap', op.namespace, operationConfigMap(op));
}

async function stored(namespace: string, release: string): Promise<OperationState> {
  const cm = (await admin.get('ConfigMap', namespace, operationConfigMapName(release))) as {
    data: Record<string, string>;
  };
  return parseOperation(cm.data['operation.json'] as string);
}

async function status(
  args: { namespace?: string; output?: 'table' | 'json'; kubeconfig?: string } = {},
): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await runStatus(
    {
      kubeconfig: args.kubeconfig ?? kubeconfig,
      output: args.output ?? 'table',
      ...(args.namespace ? { namespace: args.namespace } : {}),
    },
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), now: () => NOW },
  );
  return { code, stdout, stderr };
}

async function act(
  action: 'retry' | 'abort',
  ref: string,
  options: Partial<OperatorCliOptions> = {},
  env: NodeJS.ProcessEnv = {},
): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await runOperatorAction(
    action,
    ref,
    { kubeconfig, ...options },
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env },
  );
  return { code, stdout, stderr };
}

async function auditRecords(): Promise<OperatorActionRecord[]> {
  const pool = new pg.Pool({ connectionString: auditDb.url, max: 1 });
  try {
    return (await queryAudit(pool, { kind: 'operator-action' })) as OperatorActionRecord[];
  } finally {
    await pool.end();
  }
}

beforeAll(async () => {
  sim = await startSimCluster({});
  const kc = new KubeConfig();
  kc.loadFromString(sim.api.kubeconfig());
  rest = new KubeRest(kc);
  admin = new Cluster(rest, { attempts: 2 });
  auditDb = await createTestDatabase('operator_audit');
  dir = mkdtempSync(join(tmpdir(), 'adg-operator-'));
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, sim.api.kubeconfig(), { mode: 0o600 });
});

afterAll(async () => {
  rest?.close();
  await sim?.stop();
  await auditDb?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const held = (): OperationState =>
  seedOperation({
    namespace: 'team-a',
    release: 'airflow',
    phase: 'held',
    heldFrom: 'downgrade',
    heldReason: 'airflow db downgrade exited 1: ImportError: apache-airflow-providers-fab is not installed',
    openedMinutesAgo: 30,
  });
const draining = (): OperationState =>
  seedOperation({ namespace: 'team-b', release: 'etl', phase: 'drain', openedMinutesAgo: 5 });
const done = (): OperationState =>
  seedOperation({ namespace: 'team-c', release: 'reports', phase: 'done', openedMinutesAgo: 60 * 26 });

describe('status', () => {
  beforeEach(async () => {
    for (const op of [done(), held(), draining()]) await store(op);
  });

  it('lists operations in progress first with phase, versions, current step, age and held reason', async () => {
    const { code, stdout, stderr } = await status();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RELEASE +OPERATION +PHASE +FROM -> TO +STEP +AGE +HELD REASON$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/)[0])).toEqual(['team-b/etl', 'team-a/airflow', 'team-c/reports']);
    expect(lines[1]).toMatch(/team-b\/etl +dg-\w+ +drain +3\.1\.0 -> 3\.0\.2 +downgrade ok +5m$/);
    expect(lines[2]).toMatch(
      /team-a\/airflow +dg-\w+ +held +3\.1\.0 -> 3\.0\.2 +held at downgrade \(last: hold held\) +30m +airflow db downgrade exited 1: ImportError: apache-airflow-providers-fab is not installed$/,
    );
    expect(lines[3]).toMatch(/team-c\/reports +dg-\w+ +done +.* +26h$/);
  });

  it('JSON output and a namespace filter', async () => {
    const { code, stdout } = await status({ output: 'json', namespace: 'team-a' });
    expect(code).toBe(0);
    const rows = JSON.parse(stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      namespace: 'team-a',
      release: 'airflow',
      phase: 'held',
      inProgress: true,
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      age: '30m',
      step: 'held at downgrade (last: hold held)',
    });
    expect(rows[0].heldReason).toMatch(/ImportError/);
  });

  it('exit 1 with one line when the cluster is unreachable', async () => {
    const port = await freePort();
    const unreachable = join(dir, 'unreachable');
    writeFileSync(
      unreachable,
      sim.api.kubeconfig().replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`),
    );
    const { code, stdout, stderr } = await status({ kubeconfig: unreachable });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(
      new RegExp(`^error: cannot reach the Kubernetes API at https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\n$`),
    );
  });
});

describe('retry and abort', () => {
  beforeEach(async () => {
    for (const op of [done(), held(), draining()]) await store(op);
  });

  it('retry resumes a held operation, records who did it and appends an audit record', async () => {
    const before = await stored('team-a', 'airflow');
    const { code, stdout, stderr } = await act('retry', 'team-a/airflow', {
      user: 'alice',
      reason: 'installed the FAB provider',
      auditDatabaseUrl: auditDb.url,
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(`retry: operation ${before.id} (team-a/airflow, 3.1.0 -> 3.0.2) held -> confirm, by alice\n`);
    const after = await stored('team-a', 'airflow');
    expect(after.phase).toBe('confirm');
    expect(after.heldReason).toBeUndefined();
    expect(after.steps.at(-1)).toMatchObject({ step: 'retry', outcome: 'ok', detail: 'by alice' });
    const records = await auditRecords();
    expect(records.at(-1)).toMatchObject({
      kind: 'operator-action',
      action: 'retry',
      user: 'alice',
      namespace: 'team-a',
      release: 'airflow',
      operationId: before.id,
      reason: 'installed the FAB provider',
      outcome: 'ok',
    });
  });

  it('retry of an operation that is not held is refused in one line, and the refusal is audited', async () => {
    const op = await stored('team-b', 'etl');
    const { code, stdout, stderr } = await act(
      'retry',
      op.id,
      { user: 'bob' },
      { ADG_AUDIT_DATABASE_URL: auditDb.url },
    );
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(`error: retry refused: operation ${op.id} is drain, not held: nothing to retry\n`);
    expect((await stored('team-b', 'etl')).phase).toBe('drain');
    expect((await auditRecords()).at(-1)).toMatchObject({
      action: 'retry',
      user: 'bob',
      operationId: op.id,
      outcome: 'failed',
      error: `retry refused: operation ${op.id} is drain, not held: nothing to retry`,
    });
  });

  it('abort before the schema changed; the user defaults to the kubeconfig user', async () => {
    await store(seedOperation({ namespace: 'team-d', release: 'ml', phase: 'confirm', openedMinutesAgo: 1 }));
    const { code, stdout } = await act('abort', 'team-d/ml');
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^abort: operation dg-\w+ \(team-d\/ml, 3\.1\.0 -> 3\.0\.2\) confirm -> aborted, by sim-user\n$/,
    );
    const after = await stored('team-d', 'ml');
    expect(after.phase).toBe('aborted');
    expect(after.steps.at(-1)).toMatchObject({ step: 'abort', detail: 'by sim-user' });
  });

  it('abort is refused once the schema may have changed, with the reason', async () => {
    const { code, stderr } = await act('abort', 'team-b/etl', { user: 'carol', auditDatabaseUrl: auditDb.url });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^error: abort refused: operation dg-\w+ reached drain: the schema may already be at 3\.0\.2; aborting would leave no running code matching it — fix the cause and retry instead\n$/,
    );
    expect((await stored('team-b', 'etl')).phase).toBe('drain');
    expect((await auditRecords()).at(-1)).toMatchObject({ action: 'abort', user: 'carol', outcome: 'failed' });
    const ended = await act('abort', 'team-c/reports');
    expect(ended.code).toBe(1);
    expect(ended.stderr).toMatch(/already ended \(done\)/);
  });

  it('an unknown operation is one line, exit 1', async () => {
    const { code, stderr } = await act('retry', 'team-x/nothing');
    expect(code).toBe(1);
    expect(stderr).toBe('error: no operation team-x/nothing\n');
  });

  it('does nothing when the audit database is asked for but unreachable', async () => {
    const port = await freePort();
    const { code, stderr } = await act('retry', 'team-a/airflow', {
      user: 'alice',
      auditDatabaseUrl: `postgresql://u:secret@127.0.0.1:${port}/audit`,
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      new RegExp(
        `^error: cannot reach the audit database at postgresql://u:\\*+@127\\.0\\.0\\.1:${port}/audit: .*; nothing changed`,
      ),
    );
    expect(stderr).not.toContain('secret');
    expect((await stored('team-a', 'airflow')).phase).toBe('held');
  });
});
