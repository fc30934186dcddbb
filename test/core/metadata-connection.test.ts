// Which database a release's pods really use, from their specs: official chart (metadata Secret
// whatever its name), literal URLs, 2.x names, _CMD/_SECRET, community chart, Bitnami, override.
import { describe, expect, it } from 'vitest';
import {
  CONNECTION_QUERY_ARGV,
  METADATA_SECRET_ANNOTATION,
  composeConnectionUrl,
  describeConnectionSource,
  envFromSecrets,
  resolveConnectionSource,
  type Setting,
  type WorkloadSpec,
} from '../../src/core/metadata-connection.js';

type Env = Array<Record<string, unknown>>;

function deployment(env: Env, options: { annotations?: Record<string, string>; init?: Env } = {}): WorkloadSpec {
  return {
    kind: 'Deployment',
    object: {
      metadata: { name: 'airflow-scheduler', annotations: options.annotations ?? {} },
      spec: {
        template: {
          spec: {
            containers: [{ name: 'scheduler', image: 'x', env }],
            ...(options.init ? { initContainers: [{ name: 'wait', image: 'x', env: options.init }] } : {}),
          },
        },
      },
    },
  };
}

const secretRef = (name: string, key: string) => ({ valueFrom: { secretKeyRef: { name, key } } });

describe('resolveConnectionSource', () => {
  it('official chart: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN from the metadata Secret, whatever its name', () => {
    for (const name of ['airflow-metadata', 'my-own-metadata-secret']) {
      const source = resolveConnectionSource([
        deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', ...secretRef(name, 'connection') }]),
      ]);
      expect(source).toEqual({
        kind: 'secret',
        secret: name,
        key: 'connection',
        via: 'env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (secretKeyRef)',
      });
    }
  });

  it('a literal URL, and the 2.x [core] name; init containers count too', () => {
    const literal = resolveConnectionSource([
      deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: 'postgresql://u:p@db/airflow' }]),
    ]);
    expect(literal).toMatchObject({ kind: 'literal', url: 'postgresql://u:p@db/airflow' });
    const legacy = resolveConnectionSource([
      deployment([], { init: [{ name: 'AIRFLOW__CORE__SQL_ALCHEMY_CONN', ...secretRef('old', 'url') }] }),
    ]);
    expect(legacy).toMatchObject({ kind: 'secret', secret: 'old', key: 'url' });
  });

  it('_CMD and _SECRET: only known at run time, so a pod of the newer version is asked with a fixed argv', () => {
    for (const name of [
      'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD',
      'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET',
      'AIRFLOW__CORE__SQL_ALCHEMY_CONN_CMD',
    ]) {
      expect(resolveConnectionSource([deployment([{ name, value: 'cat /secrets/conn' }])])).toEqual({
        kind: 'ask-pod',
        argv: CONNECTION_QUERY_ARGV,
        via: `env ${name}`,
      });
    }
    expect(CONNECTION_QUERY_ARGV).toEqual(['airflow', 'config', 'get-value', 'database', 'sql_alchemy_conn']);
  });

  it('community chart: DATABASE_* settings (externalDatabase, password from a Secret) win over its _CMD', () => {
    const source = resolveConnectionSource([
      deployment([
        { name: 'DATABASE_HOST', value: 'pg.example' },
        { name: 'DATABASE_PORT', value: '5432' },
        { name: 'DATABASE_DB', value: 'airflow' },
        { name: 'DATABASE_USER', value: 'airflow' },
        { name: 'DATABASE_PASSWORD', ...secretRef('airflow-postgresql', 'postgresql-password') },
        { name: 'DATABASE_PROPERTIES', value: '?sslmode=require' },
        { name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', value: 'bash -c \'eval "$DATABASE_SQLALCHEMY_CMD"\'' },
      ]),
    ]);
    expect(source).toMatchObject({ kind: 'composed', layout: 'community' });
    if (source.kind !== 'composed') throw new Error('composed expected');
    const secrets: Record<string, string> = { 'airflow-postgresql/postgresql-password': 'p@ss:w/rd' };
    const read = (s: Setting) => ('value' in s ? s.value : (secrets[`${s.secret}/${s.key}`] as string));
    expect(composeConnectionUrl(source.parts, read)).toBe(
      'postgresql://airflow:p%40ss%3Aw%2Frd@pg.example:5432/airflow?sslmode=require',
    );
  });

  it('community chart as rendered: DATABASE_* and the _CMD in its config Secret (envFrom), the password in env', () => {
    const w: WorkloadSpec = {
      kind: 'Deployment',
      object: {
        metadata: { name: 'airflow-scheduler' },
        spec: {
          template: {
            spec: {
              containers: [
                {
                  name: 'airflow-scheduler',
                  image: 'x',
                  envFrom: [{ secretRef: { name: 'airflow-config' } }],
                  env: [{ name: 'DATABASE_PASSWORD', ...secretRef('airflow-postgresql', 'postgresql-password') }],
                },
              ],
            },
          },
        },
      },
    };
    expect(envFromSecrets([w])).toEqual(['airflow-config']);
    const keys = [
      'DATABASE_HOST',
      'DATABASE_PORT',
      'DATABASE_DB',
      'DATABASE_USER',
      'DATABASE_PROPERTIES',
      'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD',
    ];
    const source = resolveConnectionSource([w], (name) => (name === 'airflow-config' ? keys : undefined));
    expect(source).toMatchObject({
      kind: 'composed',
      layout: 'community',
      parts: {
        host: { secret: 'airflow-config', key: 'DATABASE_HOST' },
        password: { secret: 'airflow-postgresql', key: 'postgresql-password' },
      },
    });
    // Without the Secret's keys only the _CMD-less password is visible: nothing is guessed.
    expect(resolveConnectionSource([w])).toMatchObject({ kind: 'undetermined' });
  });

  it('Bitnami: AIRFLOW_DATABASE_* settings', () => {
    const source = resolveConnectionSource([
      deployment([
        { name: 'AIRFLOW_DATABASE_HOST', value: 'airflow-postgresql' },
        { name: 'AIRFLOW_DATABASE_PORT_NUMBER', value: '5432' },
        { name: 'AIRFLOW_DATABASE_NAME', value: 'bitnami_airflow' },
        { name: 'AIRFLOW_DATABASE_USERNAME', value: 'bn_airflow' },
        { name: 'AIRFLOW_DATABASE_PASSWORD', ...secretRef('airflow-postgresql', 'password') },
      ]),
    ]);
    if (source.kind !== 'composed') throw new Error('composed expected');
    expect(source.layout).toBe('bitnami');
    expect(composeConnectionUrl(source.parts, (s) => ('value' in s ? s.value : 'secret'))).toBe(
      'postgresql://bn_airflow:secret@airflow-postgresql:5432/bitnami_airflow',
    );
  });

  it('the per-release override annotation (<secret>/<key>) wins; a malformed one is undetermined, never guessed', () => {
    const pods = deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: 'postgresql://u:p@db/airflow' }], {
      annotations: { [METADATA_SECRET_ANNOTATION]: 'direct-db/url' },
    });
    expect(resolveConnectionSource([pods])).toEqual({
      kind: 'secret',
      secret: 'direct-db',
      key: 'url',
      via: `annotation ${METADATA_SECRET_ANNOTATION}`,
    });
    const bad = deployment([], { annotations: { [METADATA_SECRET_ANNOTATION]: 'postgresql://u:p@db/airflow' } });
    expect(resolveConnectionSource([bad])).toMatchObject({
      kind: 'undetermined',
      reason: expect.stringMatching(/must be <secret>\/<key>/),
    });
  });

  it('the first workload given (the newer version) decides; nothing found is undetermined with the fix', () => {
    const newer = deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', ...secretRef('new', 'connection') }]);
    const older = deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', ...secretRef('old', 'connection') }]);
    expect(resolveConnectionSource([newer, older])).toMatchObject({ secret: 'new' });
    expect(resolveConnectionSource([deployment([])])).toMatchObject({
      kind: 'undetermined',
      reason: expect.stringContaining(METADATA_SECRET_ANNOTATION),
    });
  });

  it('describes where the connection comes from without ever including it', () => {
    const literal = resolveConnectionSource([
      deployment([{ name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: 'postgresql://u:hunter2@db/airflow' }]),
    ]);
    expect(describeConnectionSource(literal)).toBe('a literal URL (env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)');
    expect(describeConnectionSource(literal)).not.toContain('hunter2');
  });
});
