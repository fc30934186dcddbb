import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDuration } from '../../src/audit/format.js';
import { migrate } from '../../src/audit/migrations.js';
import type { AuditRecord } from '../../src/audit/records.js';
import { insertRecords } from '../../src/audit/store.js';
import { parseTimeFlag, runAudit, type AuditCliOptions } from '../../src/cli/commands/audit.js';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres.js';
import { admissionRecord, operatorRecord, stepRecord } from './fixtures.js';

const T0 = Date.parse('2025-06-01T10:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();
const DOWNGRADE_ARGV = ['airflow', 'db', 'downgrade', '--to-version', '3.0.2', '--yes'];
const GUARD = 'airflow-downgrade-guard-5c6d7-xyz12';

const seeded: AuditRecord[] = [
  admissionRecord({ at: at(0) }),
  admissionRecord({
    at: at(500),
    requestUid: 'uid-2',
    objectName: 'airflow-api-server',
    airflowComponent: 'api-server',
    decision: 'join-operation',
    latencyMs: 0.31,
  }),
  stepRecord({
    at: at(1000),
    step: 'choose-exec-pod',
    event: 'start',
    outcome: undefined,
    durationMs: undefined,
    execPod: undefined,
    command: undefined,
    exitCode: undefined,
    outputExcerpt: undefined,
  }),
  stepRecord({
    at: at(1020),
    step: 'choose-exec-pod',
    event: 'end',
    outcome: 'ok',
    durationMs: 20,
    command: undefined,
    exitCode: undefined,
    outputExcerpt: undefined,
  }),
  stepRecord({
    at: at(1100),
    step: 'downgrade',
    event: 'start',
    outcome: undefined,
    durationMs: undefined,
    exitCode: undefined,
    outputExcerpt: undefined,
  }),
  stepRecord({ at: at(49_350), step: 'downgrade', event: 'end', outcome: 'ok', durationMs: 48_250 }),
  stepRecord({
    at: at(49_400),
    step: 'drain',
    event: 'start',
    outcome: undefined,
    durationMs: undefined,
    execPod: undefined,
    command: undefined,
    exitCode: undefined,
    outputExcerpt: undefined,
  }),
  operatorRecord({ at: at(60_000), action: 'retry', reason: 'drain looked stuck' }),
  admissionRecord({
    at: at(3_600_000),
    requestUid: 'uid-dry',
    namespace: 'ci',
    release: 'staging',
    decision: 'downgrade',
    dryRun: true,
    user: 'ci-bot',
    operationId: undefined,
    latencyMs: 0.8,
  }),
  admissionRecord({
    at: at(3_700_000),
    requestUid: 'uid-pass',
    namespace: 'ci',
    release: 'staging',
    decision: 'pass-through',
    user: 'ci-bot',
    operationId: undefined,
    fromVersion: '3.0.2',
    toVersion: '3.1.0',
    latencyMs: 0.05,
  }),
].map((record) => JSON.parse(JSON.stringify(record)) as AuditRecord); // drop undefined fields like the store does

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

function options(overrides: Partial<AuditCliOptions>): AuditCliOptions {
  return { limit: 1000, output: 'table', ...overrides };
}

async function run(opts: AuditCliOptions, env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await runAudit(opts, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env });
  return { code, stdout, stderr };
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const builtMain = join(root, 'dist/src/cli/main.js');

function newestMtime(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs),
  );
}

/** `npm test` builds first; run alone, this builds when dist is older than the sources it runs. */
function ensureBuilt(): void {
  const builtAt = existsSync(builtMain) ? statSync(join(root, 'dist/src/cli/commands/audit.js')).mtimeMs : 0;
  const sources = Math.max(...['src/audit', 'src/cli', 'src/db'].map((d) => newestMtime(join(root, d))));
  if (builtAt >= sources) return;
  // Other areas' type errors must not stop the emit our files need.
  spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'ignore' });
}

function runProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [builtMain, 'audit', ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('audit command', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('audit cli');
    const pool = new pg.Pool({ connectionString: db.url });
    try {
      await migrate(pool);
      await insertRecords(pool, seeded);
    } finally {
      await pool.end();
    }
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('prints JSON lines, one stored record per line, request included', async () => {
    const result = await run(options({ databaseUrl: db.url, output: 'json' }));
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines.map((line) => JSON.parse(line))).toEqual(seeded);
    expect(JSON.parse(lines[0]!).request.kind).toEqual({ group: 'apps', version: 'v1', kind: 'Deployment' });
  });

  it('prints a readable table', async () => {
    const result = await run(options({ databaseUrl: db.url, release: 'staging' }), { ADG_AUDIT_DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^TIME +KIND +NAMESPACE\/RELEASE +OBJECT +DECISION\/STEP +OUTCOME +USER +OPERATION +LATENCY\/DURATION$/,
    );
    expect(lines[1]!.split(/ {2,}/)).toEqual([
      '2025-06-01T11:00:00.000Z',
      'admission',
      'ci/staging',
      'Deployment/airflow-scheduler',
      'downgrade (dry-run)',
      '-',
      'ci-bot',
      '-',
      '0.80ms',
    ]);
    expect(lines[2]!.split(/ {2,}/)).toEqual([
      '2025-06-01T11:01:40.000Z',
      'admission',
      'ci/staging',
      'Deployment/airflow-scheduler',
      'pass-through',
      '-',
      'ci-bot',
      '-',
      '0.05ms',
    ]);
  });

  it('shows steps with outcome and duration in the table', async () => {
    const result = await run(options({ databaseUrl: db.url, kind: 'operation-step', user: GUARD }));
    const row = result.stdout.split('\n').find((line) => line.includes('downgrade end'))!;
    expect(row.split(/ {2,}/)).toEqual([
      '2025-06-01T10:00:49.350Z',
      'operation-step',
      'data/airflow',
      'pod/airflow-api-server-7d9f8-abcde',
      'downgrade end',
      'ok',
      GUARD,
      'op-airflow-1',
      '48.3s',
    ]);
  });

  it('prints a timeline per operation with the admissions that opened and joined it', async () => {
    const result = await run(options({ databaseUrl: db.url, output: 'timeline' }));
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        'operation op-airflow-1  data/airflow  3.1.0 → 3.0.2  since 2025-06-01T10:00:00.000Z: step drain running or interrupted',
        '  2025-06-01T10:00:00.000Z      +0s  admission downgrade: UPDATE Deployment/airflow-scheduler 3.1.0 → 3.0.2 by system:serviceaccount:argocd:argocd-application-controller [opened]',
        '  2025-06-01T10:00:00.500Z   +500ms  admission join-operation: UPDATE Deployment/airflow-api-server 3.1.0 → 3.0.2 by system:serviceaccount:argocd:argocd-application-controller [joined]',
        `  2025-06-01T10:00:01.000Z   +1.00s  step choose-exec-pod  ok  20ms  in pod/airflow-api-server-7d9f8-abcde  (${GUARD})`,
        `  2025-06-01T10:00:01.100Z   +1.10s  step downgrade  ok  48.3s  in pod/airflow-api-server-7d9f8-abcde  exit 0 \`${DOWNGRADE_ARGV.join(' ')}\`  (${GUARD})`,
        `  2025-06-01T10:00:49.400Z   +49.4s  step drain  started, no end recorded  (${GUARD})`,
        '  2025-06-01T10:01:00.000Z   +1m00s  operator retry by alice@example.com ok: drain looked stuck',
        '',
        'not part of an operation (2)',
        '  2025-06-01T11:00:00.000Z  admission downgrade (dry-run): UPDATE Deployment/airflow-scheduler 3.1.0 → 3.0.2 by ci-bot [ci/staging]',
        '  2025-06-01T11:01:40.000Z  admission pass-through: UPDATE Deployment/airflow-scheduler 3.0.2 → 3.1.0 by ci-bot [ci/staging]',
        '',
      ].join('\n'),
    );
  });

  it('filters by operation, decision, namespace and time range', async () => {
    const json = async (overrides: Partial<AuditCliOptions>): Promise<string[]> => {
      const result = await run(options({ databaseUrl: db.url, output: 'json', ...overrides }));
      expect(result.code).toBe(0);
      return result.stdout
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as AuditRecord).at);
    };
    expect(await json({ operation: 'op-airflow-1' })).toHaveLength(8);
    expect(await json({ decision: 'pass-through' })).toEqual([at(3_700_000)]);
    expect(await json({ namespace: 'ci', decision: 'downgrade' })).toEqual([at(3_600_000)]);
    expect(await json({ since: new Date(at(49_400)), until: new Date(at(3_600_000)) })).toEqual([
      at(49_400),
      at(60_000),
    ]);
    expect(await json({ limit: 1 })).toEqual([at(3_700_000)]);
    expect(await json({ release: 'nope' })).toEqual([]);
    expect((await run(options({ databaseUrl: db.url, release: 'nope' }))).stdout).toBe('no audit records match\n');
  });

  it('says in one line, without the password, when the database cannot be reached', async () => {
    const port = await freePort();
    const url = `postgresql://auditor:pa55word@127.0.0.1:${port}/audit`;
    const result = await run(options({ databaseUrl: url }));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      new RegExp(
        `^cannot reach the audit database at postgresql://auditor:\\*\\*\\*@127\\.0\\.0\\.1:${port}/audit: .*ECONNREFUSED.*\\n$`,
      ),
    );
    expect(result.stderr).not.toContain('pa55word');
  });

  it('says when the database has no audit schema yet', async () => {
    const result = await run(options({ databaseUrl: db.url, schema: 'never_written' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has no audit records \(schema never_written not created yet/);
  });

  it('needs a database URL and a PostgreSQL one', async () => {
    expect(await run(options({}))).toMatchObject({ code: 2, stderr: expect.stringMatching(/ADG_AUDIT_DATABASE_URL/) });
    const mysql = await run(options({ databaseUrl: 'mysql://u:secret@h/db' }));
    expect(mysql.code).toBe(2);
    expect(mysql.stderr).not.toContain('secret');
    const fromEnv = await run(options({ release: 'staging', output: 'json' }), { ADG_AUDIT_DATABASE_URL: db.url });
    expect(fromEnv.stdout.trimEnd().split('\n')).toHaveLength(2);
  });

  it('parses --since as a duration before now or an ISO time', () => {
    const now = Date.parse('2025-06-02T00:00:00Z');
    expect(parseTimeFlag('24h', now).toISOString()).toBe('2025-06-01T00:00:00.000Z');
    expect(parseTimeFlag('30m', now).toISOString()).toBe('2025-06-01T23:30:00.000Z');
    expect(parseTimeFlag('7d', now).toISOString()).toBe('2025-05-26T00:00:00.000Z');
    expect(parseTimeFlag('2025-06-01T10:00:00Z', now).toISOString()).toBe('2025-06-01T10:00:00.000Z');
    expect(parseTimeFlag('2025-06-01', now).toISOString()).toBe('2025-06-01T00:00:00.000Z');
    for (const bad of ['yesterday', '24', '-1h', '1y', '2025-13-45'])
      expect(() => parseTimeFlag(bad, now)).toThrow(/expected a duration/);
  });

  it('formats durations for people', () => {
    expect([0.42, 5, 20, 999, 1500, 48_250, 90_000, 7_500_000].map(formatDuration)).toEqual([
      '0.42ms',
      '5.0ms',
      '20ms',
      '999ms',
      '1.50s',
      '48.3s',
      '1m30s',
      '2h05m',
    ]);
  });

  describe('as a process (node dist/src/cli/main.js audit)', () => {
    beforeAll(() => {
      ensureBuilt();
      expect(existsSync(builtMain), 'dist/ is missing and tsc did not build it').toBe(true);
    }, 120_000);

    it('prints records and exits 0', async () => {
      const result = await runProcess(['--release', 'staging', '--output', 'json', '--since', '3650d'], {
        ADG_AUDIT_DATABASE_URL: db.url,
      });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout.trimEnd().split('\n')).toHaveLength(2);
    });

    it('exits 2 on bad flags and 1 on an unreachable store', async () => {
      const env = { ADG_AUDIT_DATABASE_URL: db.url };
      for (const args of [
        ['--output', 'yaml'],
        ['--since', 'yesterday'],
        ['--limit', '0'],
        ['--kind', 'nope'],
        ['--bogus'],
        ['--release'],
      ]) {
        const result = await runProcess(args, env);
        expect({ args, code: result.code }).toEqual({ args, code: 2 });
        expect(result.stderr).toMatch(/error/);
      }
      const port = await freePort();
      const down = await runProcess([], { ADG_AUDIT_DATABASE_URL: `postgresql://a:b@127.0.0.1:${port}/x` });
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^cannot reach the audit database at postgresql:\/\/a:\*\*\*@/);
      const help = await runProcess(['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('review --file review.json');
    });
  });
});
