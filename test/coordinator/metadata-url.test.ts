import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MetadataUrls } from '../../src/coordinator/metadata-url.js';
import type { PodRecord, WorkloadRecord } from '../../src/coordinator/release-view.js';
import { CONNECTION_QUERY_ARGV, METADATA_SECRET_ANNOTATION } from '../../src/core/metadata-connection.js';
import type { ExecCommand, ExecOutcome } from '../../src/k8s/exec.js';

const PASSWORD = 's3cr3t-pa55';
const URL = `postgresql://airflow:${PASSWORD}@db.example:5432/airflow`;
const b64 = (text: string) => Buffer.from(text).toString('base64');
const ref = { namespace: 'ns', release: 'rel', fromVersion: '3.1.0', fromRevision: 'cc92b33c6709' };

function record(name: string, version = '3.1.0'): WorkloadRecord {
  return {
    kind: 'Deployment',
    namespace: 'ns',
    name,
    release: 'rel',
    component: 'scheduler',
    role: 'metadata-db',
    version,
    head: version === '3.1.0' ? 'cc92b33c6709' : '29ce7909c52b',
    replicas: 1,
    resourceVersion: '1',
  };
}

function deployment(env: unknown[], annotations: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return {
    metadata: { name: 'rel-scheduler', namespace: 'ns', annotations },
    spec: { template: { spec: { containers: [{ name: 'scheduler', image: 'apache/airflow:3.1.0', env, ...extra }] } } },
  };
}

const pod: PodRecord = {
  namespace: 'ns',
  name: 'rel-scheduler-1',
  release: 'rel',
  component: 'scheduler',
  role: 'metadata-db',
  version: '3.1.0',
  head: 'cc92b33c6709',
  phase: 'Running',
  ready: true,
  terminating: false,
  container: 'scheduler',
};

function setup(objects: Record<string, unknown>, options: { global?: string; answer?: string } = {}) {
  const lines: string[] = [];
  const execs: ExecCommand[] = [];
  const urls = new MetadataUrls(
    {
      metadataSecretName: (release) => `${release}-metadata`,
      metadataSecretKey: 'connection',
      ...(options.global ? { databaseUrlOverride: options.global } : {}),
    },
    {
      find: async (kind, _ns, name) => objects[`${kind}/${name}`],
      exec: async (command): Promise<ExecOutcome> => {
        execs.push(command);
        return { exitCode: 0, timedOut: false, stdout: `${options.answer ?? URL}\n`, stderr: '', durationMs: 1 };
      },
      logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }),
    },
  );
  return { urls, lines, execs };
}

const conn = 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN';

describe('MetadataUrls: the database the pods really use', () => {
  it("the official chart's metadata Secret whatever its name (secretKeyRef)", async () => {
    const { urls, lines } = setup({
      'Deployment/rel-scheduler': deployment([
        { name: conn, valueFrom: { secretKeyRef: { name: 'custom-db', key: 'connection' } } },
      ]),
      'Secret/custom-db': { data: { connection: b64(URL) } },
    });
    expect(await urls.url(ref, [record('rel-scheduler')], [])).toBe(URL);
    expect(lines.join('')).toMatch(/Secret custom-db key connection/);
  });

  it('a literal, the 2.x [core] name, and the community chart composed from DATABASE_* (envFrom)', async () => {
    const literal = setup({ 'Deployment/rel-scheduler': deployment([{ name: conn, value: URL }]) });
    expect(await literal.urls.url(ref, [record('rel-scheduler')], [])).toBe(URL);
    const legacy = setup({
      'Deployment/rel-scheduler': deployment([{ name: 'AIRFLOW__CORE__SQL_ALCHEMY_CONN', value: URL }]),
    });
    expect(await legacy.urls.url(ref, [record('rel-scheduler')], [])).toBe(URL);
    const community = setup({
      'Deployment/rel-scheduler': deployment(
        [
          {
            name: 'DATABASE_PASSWORD',
            valueFrom: { secretKeyRef: { name: 'rel-postgresql', key: 'postgresql-password' } },
          },
        ],
        {},
        { envFrom: [{ secretRef: { name: 'rel-config' } }] },
      ),
      'Secret/rel-config': {
        data: {
          DATABASE_HOST: b64('db.example'),
          DATABASE_PORT: b64('5432'),
          DATABASE_DB: b64('airflow'),
          DATABASE_USER: b64('airflow'),
          AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: b64('bash -c \'eval "$DATABASE_SQLALCHEMY_CMD"\''),
        },
      },
      'Secret/rel-postgresql': { data: { 'postgresql-password': b64(PASSWORD) } },
    });
    expect(await community.urls.url(ref, [record('rel-scheduler')], [])).toBe(URL);
    expect(community.execs).toEqual([]);
  });

  it('a connection built at run time (_CMD) is asked of a pod of the newer version, by a fixed argv', async () => {
    const { urls, execs } = setup({
      'Deployment/rel-scheduler': deployment([{ name: `${conn}_CMD`, value: 'cat /run/secrets/conn' }]),
    });
    const older = { ...pod, name: 'old', version: '3.0.2', head: '29ce7909c52b' };
    expect(await urls.url(ref, [record('rel-scheduler')], [older, pod])).toBe(URL);
    expect(execs).toEqual([expect.objectContaining({ pod: 'rel-scheduler-1', argv: CONNECTION_QUERY_ARGV })]);
  });

  it('precedence: the per-release override annotation, then the global URL, then the pod specs', async () => {
    const objects = {
      'Deployment/rel-scheduler': deployment([{ name: conn, value: 'postgresql://spec/db' }]),
      'Deployment/rel-api-server': deployment([], { [METADATA_SECRET_ANNOTATION]: 'override/url' }),
      'Secret/override': { data: { url: b64(URL) } },
    };
    const both = setup(objects, { global: 'postgresql://global/db' });
    expect(await both.urls.url(ref, [record('rel-scheduler'), record('rel-api-server')], [])).toBe(URL);
    const global = setup(objects, { global: 'postgresql://global/db' });
    expect(await global.urls.url(ref, [record('rel-scheduler')], [])).toBe('postgresql://global/db');
    const spec = setup(objects);
    expect(await spec.urls.url(ref, [record('rel-scheduler')], [])).toBe('postgresql://spec/db');
  });

  it("nothing in the specs: the official chart's default <release>-metadata Secret, else a clear error", async () => {
    const found = setup({
      'Deployment/rel-scheduler': deployment([]),
      'Secret/rel-metadata': { data: { connection: b64(URL) } },
    });
    expect(await found.urls.url(ref, [record('rel-scheduler')], [])).toBe(URL);
    const missing = setup({ 'Deployment/rel-scheduler': deployment([]) });
    await expect(missing.urls.url(ref, [record('rel-scheduler')], [])).rejects.toThrow(
      /metadata connection of release ns\/rel not found: no AIRFLOW__DATABASE__SQL_ALCHEMY_CONN.*; and no Secret rel-metadata/,
    );
  });

  it('reuses the URL for a while and resolves again after forget (a _CMD needs a pod of the newer version then)', async () => {
    const { urls, execs } = setup({
      'Deployment/rel-scheduler': deployment([{ name: `${conn}_CMD`, value: 'cat /run/secrets/conn' }]),
    });
    expect(await urls.url(ref, [record('rel-scheduler')], [pod])).toBe(URL);
    expect(await urls.url(ref, [record('rel-scheduler')], [pod])).toBe(URL);
    expect(execs).toHaveLength(1);
    urls.forget(ref);
    await expect(urls.url(ref, [record('rel-scheduler')], [])).rejects.toThrow(/no Running and Ready pod of 3.1.0/);
  });

  it('never logs the connection or puts it in an error', async () => {
    const { urls, lines } = setup({
      'Deployment/rel-scheduler': deployment([{ name: conn, value: URL }]),
    });
    await urls.url(ref, [record('rel-scheduler')], []);
    const bad = setup({
      'Deployment/rel-scheduler': deployment([
        { name: conn, valueFrom: { secretKeyRef: { name: 'db', key: 'nokey' } } },
      ]),
      'Secret/db': { data: { connection: b64(URL) } },
    });
    const error = await bad.urls.url(ref, [record('rel-scheduler')], []).catch((e: Error) => e.message);
    expect(error).toBe("metadata Secret ns/db has no key 'nokey'");
    expect([...lines, ...bad.lines, error].join('\n')).not.toContain(PASSWORD);
  });
});
