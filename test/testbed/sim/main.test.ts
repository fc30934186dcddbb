// `npm run sim` as outside harnesses use it: an embedded PostgreSQL, an admin kubeconfig and one
// for the guard's ServiceAccount, protobuf bodies accepted; Ctrl-C stops everything it started.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, expect, it } from 'vitest';
import { simProtobufConverter } from '../../../testbed/sim/protobuf-converter.js';
import { kubectlFor, removeKubectlDirs } from './support.js';

const MAIN = resolve(import.meta.dirname, '../../../dist-testbed/testbed/sim/main.js');
const dir = mkdtempSync(join(tmpdir(), 'adg-sim-main-'));
afterAll(() => {
  removeKubectlDirs();
  rmSync(dir, { recursive: true, force: true });
});

it('starts Postgres, writes both kubeconfigs, takes protobuf, and stops all on SIGTERM', async () => {
  const admin = join(dir, 'admin');
  const guard = join(dir, 'guard');
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const child = spawn(
    process.execPath,
    [
      MAIN,
      '--kubeconfig-out',
      admin,
      '--guard-kubeconfig-out',
      guard,
      '--postgres',
      '--protobuf-converter',
      simProtobufConverter(),
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<string>((r) => child.on('exit', (code, signal) => r(`${code} ${signal}`)));
  try {
    await new Promise<void>((ready, fail) => {
      child.stdout.on('data', () => output.includes('press Ctrl-C') && ready());
      void exited.then((how) => fail(new Error(`sim exited (${how}): ${output}`)));
    });
    expect(output).toContain('(system:serviceaccount:airflow-downgrade-guard:airflow-downgrade-guard) written to');
    const url = /default metadata database \(embedded PostgreSQL\): (\S+)/.exec(output)?.[1];
    expect(url).toMatch(/^postgres(ql)?:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\//);

    const guardConfig = parseYaml(readFileSync(guard, 'utf8')) as {
      users: Array<{ user: { token: string } }>;
      contexts: Array<{ context: { namespace: string } }>;
    };
    const adminConfig = parseYaml(readFileSync(admin, 'utf8')) as typeof guardConfig;
    expect(guardConfig.users[0]!.user.token).not.toBe(adminConfig.users[0]!.user.token);
    expect(guardConfig.contexts[0]!.context.namespace).toBe('airflow-downgrade-guard');
    // The token is accepted (a made-up one gets 401), and kubectl create sends protobuf.
    const kubectl = kubectlFor(readFileSync(guard, 'utf8'));
    const created = await kubectl(['create', 'namespace', 'from-guard']);
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('namespace/from-guard created');
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe('0 null');
  expect(output).toContain('SIGTERM: stopping the simulated cluster');
});

it('keeps a given database URL to itself', async () => {
  // The redaction of the printed URL: a password never reaches the terminal.
  const admin = join(dir, 'admin2');
  const child = spawn(
    process.execPath,
    [
      MAIN,
      '--kubeconfig-out',
      admin,
      '--database-url',
      'postgresql://airflow:hunter2@127.0.0.1:1/airflow',
      '--protobuf-converter',
      simProtobufConverter(),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<string>((r) => child.on('exit', (code, signal) => r(`${code} ${signal}`)));
  await new Promise<void>((ready) => child.stdout.on('data', () => output.includes('press Ctrl-C') && ready()));
  child.kill('SIGTERM');
  const code = await exited;
  expect(code).toBe('0 null');
  expect(output).toContain('default metadata database: postgresql://airflow:***@127.0.0.1:1/airflow');
  expect(output).not.toContain('hunter2');
});
