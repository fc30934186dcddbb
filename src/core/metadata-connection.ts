// Where a release's pods get their metadata-database connection, read from the workload specs alone
// (pure: no Secret is read here). The coordinator reads what this names; the connection text is a
// secret and never appears in what `describeConnectionSource` returns.
import { ANNOTATION_PREFIX } from './config.js';
import { annotationAt, isJsonObject, isValidObjectName, podTemplateOf, valueAt, type WorkloadKind } from './objects.js';

/** Per-release override on any workload of the release: `<secret>/<key>` (never a URL in an annotation). */
export const METADATA_SECRET_ANNOTATION = `${ANNOTATION_PREFIX}metadata-secret`;

/** Asked of a pod of the newer version when the connection is only built at run time (fixed argv). */
export const CONNECTION_QUERY_ARGV: readonly string[] = [
  'airflow',
  'config',
  'get-value',
  'database',
  'sql_alchemy_conn',
];

/** An environment value: literal, or one key of a Secret. */
export type Setting = { value: string } | { secret: string; key: string };

export type ConnectionSource =
  /** The override annotation, or a `secretKeyRef` (the official chart's metadata Secret, whatever its name). */
  | { kind: 'secret'; secret: string; key: string; via: string }
  /** A literal URL in the spec. */
  | { kind: 'literal'; url: string; via: string }
  /** Built from host/port/user/password/database settings (community chart, Bitnami). */
  | { kind: 'composed'; layout: 'community' | 'bitnami'; parts: ConnectionParts; via: string }
  /** Only known at run time (`_CMD`, `_SECRET` backends): ask a pod of the newer version. */
  | { kind: 'ask-pod'; argv: readonly string[]; via: string }
  | { kind: 'undetermined'; reason: string };

export interface ConnectionParts {
  scheme: string;
  host: Setting;
  port?: Setting;
  database: Setting;
  user: Setting;
  password?: Setting;
  /** Query string appended as is, e.g. `?sslmode=require`. */
  properties?: Setting;
}

export interface WorkloadSpec {
  kind: WorkloadKind;
  object: unknown;
}

interface EnvEntry {
  name: string;
  setting?: Setting;
}

/** `airflow.cfg [database] sql_alchemy_conn` as environment (Airflow 2.3+), then the 2.x `[core]` name. */
const CONN_VARIABLES = ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', 'AIRFLOW__CORE__SQL_ALCHEMY_CONN'];

const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

/** The keys of a Secret the pods load with `envFrom` (names only: values are not needed to resolve). */
export type SecretKeys = (secret: string) => readonly string[] | undefined;

/** Secrets the workloads load with `envFrom`, for the caller to list the keys of (the community chart's config). */
export function envFromSecrets(workloads: readonly WorkloadSpec[]): string[] {
  const names = new Set<string>();
  for (const w of workloads) {
    for (const container of podContainers(w)) {
      for (const from of isJsonObject(container) && Array.isArray(container.envFrom)
        ? (container.envFrom as unknown[])
        : []) {
        const name = valueAt(from, ['secretRef', 'name']);
        if (isValidObjectName(name)) names.add(name);
      }
    }
  }
  return [...names];
}

/**
 * The connection source of a release. `workloads` in order of preference (the newer version's
 * first); the override annotation on any of them wins over what their pods set. `secretKeys`
 * tells which variables the `envFrom` Secrets carry.
 */
export function resolveConnectionSource(
  workloads: readonly WorkloadSpec[],
  secretKeys: SecretKeys = () => undefined,
): ConnectionSource {
  for (const w of workloads) {
    const override = annotationAt(w.object, METADATA_SECRET_ANNOTATION);
    if (override === undefined) continue;
    const [secret, key, ...rest] = override.trim().split('/');
    if (rest.length > 0 || !isValidObjectName(secret) || key === undefined || !SECRET_KEY.test(key)) {
      return {
        kind: 'undetermined',
        reason: `annotation ${METADATA_SECRET_ANNOTATION} must be <secret>/<key>, e.g. airflow-metadata/connection`,
      };
    }
    return { kind: 'secret', secret, key, via: `annotation ${METADATA_SECRET_ANNOTATION}` };
  }
  for (const w of workloads) {
    for (const env of containerEnvs(w, secretKeys)) {
      const found = fromEnvironment(env);
      if (found) return found;
    }
  }
  return {
    kind: 'undetermined',
    reason: `no ${CONN_VARIABLES.join(' or ')} (literal, secretKeyRef, _SECRET or _CMD), community-chart DATABASE_* or Bitnami AIRFLOW_DATABASE_* settings in the release's pod specs; set annotation ${METADATA_SECRET_ANNOTATION}`,
  };
}

function fromEnvironment(env: Map<string, EnvEntry>): ConnectionSource | undefined {
  for (const variable of CONN_VARIABLES) {
    const direct = env.get(variable);
    if (direct?.setting) {
      return 'value' in direct.setting
        ? { kind: 'literal', url: direct.setting.value, via: `env ${variable}` }
        : {
            kind: 'secret',
            secret: direct.setting.secret,
            key: direct.setting.key,
            via: `env ${variable} (secretKeyRef)`,
          };
    }
  }
  // The community chart builds the URL in a _CMD from DATABASE_*: the same parts, read directly.
  const community = composed(env, 'community', {
    host: 'DATABASE_HOST',
    port: 'DATABASE_PORT',
    database: 'DATABASE_DB',
    user: 'DATABASE_USER',
    password: 'DATABASE_PASSWORD',
    properties: 'DATABASE_PROPERTIES',
    type: 'DATABASE_TYPE',
  });
  if (community) return community;
  const bitnami = composed(env, 'bitnami', {
    host: 'AIRFLOW_DATABASE_HOST',
    port: 'AIRFLOW_DATABASE_PORT_NUMBER',
    database: 'AIRFLOW_DATABASE_NAME',
    user: 'AIRFLOW_DATABASE_USERNAME',
    password: 'AIRFLOW_DATABASE_PASSWORD',
  });
  if (bitnami) return bitnami;
  for (const variable of CONN_VARIABLES) {
    for (const suffix of ['_CMD', '_SECRET']) {
      if (env.has(`${variable}${suffix}`))
        return { kind: 'ask-pod', argv: CONNECTION_QUERY_ARGV, via: `env ${variable}${suffix}` };
    }
  }
  return undefined;
}

type PartNames = {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
  properties?: string;
  type?: string;
};

function composed(
  env: Map<string, EnvEntry>,
  layout: 'community' | 'bitnami',
  names: PartNames,
): ConnectionSource | undefined {
  const get = (name: string | undefined): Setting | undefined =>
    name === undefined ? undefined : env.get(name)?.setting;
  const host = get(names.host);
  const database = get(names.database);
  const user = get(names.user);
  if (!host || !database || !user) return undefined;
  const port = get(names.port);
  const password = get(names.password);
  const properties = get(names.properties);
  // The community chart also runs on MySQL (DATABASE_TYPE); Bitnami's is PostgreSQL only.
  const type = get(names.type);
  const scheme = type && 'value' in type && type.value === 'mysql' ? 'mysql' : 'postgresql';
  const parts: ConnectionParts = {
    scheme,
    host,
    database,
    user,
    ...(port ? { port } : {}),
    ...(password ? { password } : {}),
    ...(properties ? { properties } : {}),
  };
  return {
    kind: 'composed',
    layout,
    parts,
    via: `env ${names.host}, ${names.database}, ${names.user}${password ? `, ${names.password}` : ''}`,
  };
}

/** The URL from composed parts once their Secret keys are read (`read` returns the decoded value). */
export function composeConnectionUrl(parts: ConnectionParts, read: (setting: Setting) => string): string {
  const user = encodeURIComponent(read(parts.user));
  const password = parts.password ? `:${encodeURIComponent(read(parts.password))}` : '';
  const port = parts.port ? `:${read(parts.port)}` : '';
  const properties = parts.properties ? read(parts.properties) : '';
  return `${parts.scheme}://${user}${password}@${read(parts.host)}${port}/${encodeURIComponent(read(parts.database))}${properties}`;
}

/** For logs, Events and audit: where the connection comes from, never the connection itself. */
export function describeConnectionSource(source: ConnectionSource): string {
  switch (source.kind) {
    case 'secret':
      return `Secret ${source.secret} key ${source.key} (${source.via})`;
    case 'literal':
      return `a literal URL (${source.via})`;
    case 'composed':
      return `the ${source.layout === 'community' ? 'community chart' : 'Bitnami chart'}'s database settings (${source.via})`;
    case 'ask-pod':
      return `a pod of the newer version, \`${source.argv.join(' ')}\` (${source.via})`;
    case 'undetermined':
      return `undetermined: ${source.reason}`;
  }
}

function podContainers(w: WorkloadSpec): unknown[] {
  const template = podTemplateOf(w.kind, w.object);
  return [valueAt(template, ['spec', 'containers']), valueAt(template, ['spec', 'initContainers'])].flatMap((list) =>
    Array.isArray(list) ? (list as unknown[]) : [],
  );
}

/** Environment of every container (init containers too) as the kubelet builds it: envFrom Secrets, env over them. */
function containerEnvs(w: WorkloadSpec, secretKeys: SecretKeys): Array<Map<string, EnvEntry>> {
  const out: Array<Map<string, EnvEntry>> = [];
  for (const container of podContainers(w)) {
    if (!isJsonObject(container)) continue;
    const env = new Map<string, EnvEntry>();
    for (const from of Array.isArray(container.envFrom) ? (container.envFrom as unknown[]) : []) {
      const secret = valueAt(from, ['secretRef', 'name']);
      if (!isValidObjectName(secret)) continue;
      for (const key of secretKeys(secret) ?? [])
        if (SECRET_KEY.test(key)) env.set(key, { name: key, setting: { secret, key } });
    }
    for (const entry of Array.isArray(container.env) ? (container.env as unknown[]) : []) {
      if (!isJsonObject(entry) || typeof entry.name !== 'string') continue;
      env.set(entry.name, { name: entry.name, ...settingOf(entry) });
    }
    out.push(env);
  }
  return out;
}

function settingOf(entry: Record<string, unknown>): { setting?: Setting } {
  if (typeof entry.value === 'string') return { setting: { value: entry.value } };
  const ref = valueAt(entry, ['valueFrom', 'secretKeyRef']);
  if (isJsonObject(ref) && isValidObjectName(ref.name) && typeof ref.key === 'string' && SECRET_KEY.test(ref.key)) {
    return { setting: { secret: ref.name, key: ref.key } };
  }
  return {};
}
