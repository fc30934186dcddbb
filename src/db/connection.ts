// The chart's metadata connection is a SQLAlchemy URL (`postgresql://…`, `postgresql+psycopg2://…`,
// `postgres://…`, options like `?sslmode=` in the query). This turns it into a node-postgres
// config, refuses anything that is not PostgreSQL, and redacts passwords for every message.
import type { ClientConfig } from 'pg';

export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

/** SQLAlchemy dialect+driver schemes that speak the PostgreSQL protocol. */
const POSTGRES_SCHEME = /^(?:postgres|postgresql)(?:\+(?:psycopg2|psycopg|psycopg2cffi|pg8000|asyncpg|pygresql))?$/;

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface ConnectionOptions {
  /** Bounds connecting and each statement, so a dead database fails fast instead of hanging. */
  timeoutMs?: number;
  applicationName?: string;
  /** Which database the URL is for, in error messages (default: metadata). */
  role?: 'metadata' | 'audit';
}

/** A bad URL, before parseDatabaseUrl names the database it was for. */
class UrlProblem extends Error {}

/** Password (in the userinfo or a `password=` parameter) replaced by `***`; works on unparsable text too. */
export function redactConnectionString(url: string): string {
  if (typeof url !== 'string') return '<not a string>';
  return redactUserinfo(url).replace(/([?&]password=)[^&#]*/gi, '$1***');
}

// The password runs from the first ':' after '//' to the LAST '@' (an unencoded '@' in a password
// must not leak its tail); redacting too much is fine, too little is not.
function redactUserinfo(url: string): string {
  const start = url.indexOf('//');
  const at = url.lastIndexOf('@');
  if (start < 0 || at < start) return url;
  const colon = url.indexOf(':', start + 2);
  if (colon < 0 || colon > at) return url;
  return `${url.slice(0, colon + 1)}***${url.slice(at)}`;
}

function fail(url: string, why: string): never {
  throw new UrlProblem(`'${redactConnectionString(url)}': ${why}`);
}

function schemeOf(url: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  return match?.[1]?.toLowerCase() ?? '';
}

function decode(url: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(url, `${what} is not valid percent-encoding`);
  }
}

function sslFor(url: string, mode: string | null): ClientConfig['ssl'] {
  if (mode === null) return undefined;
  if (!SSL_MODES.includes(mode as SslMode)) {
    return fail(url, `sslmode '${mode}' is not one of ${SSL_MODES.join(', ')}`);
  }
  switch (mode as SslMode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      // node-postgres cannot fall back from TLS to plain text; 'allow'/'prefer' connect in plain text.
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true };
  }
}

/** node-postgres config for a SQLAlchemy PostgreSQL URL; throws DatabaseUrlError with the reason. */
export function parseDatabaseUrl(url: string, options: ConnectionOptions = {}): ClientConfig {
  try {
    return databaseConfig(url, options);
  } catch (error) {
    if (error instanceof UrlProblem)
      throw new DatabaseUrlError(`invalid ${options.role ?? 'metadata'} database URL ${error.message}`);
    throw error;
  }
}

function databaseConfig(url: string, options: ConnectionOptions): ClientConfig {
  if (typeof url !== 'string' || url.trim() === '') fail(String(url), 'empty');
  if (url.length > 4096) fail(url.slice(0, 64), 'longer than 4096 characters');
  const scheme = schemeOf(url);
  if (!POSTGRES_SCHEME.test(scheme)) {
    fail(
      url,
      `scheme '${scheme || '(none)'}' is not PostgreSQL (expected postgresql://, postgresql+psycopg2:// or postgres://)`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail(url, /\/\/[^/]*,/.test(url) ? 'several hosts in one URL are not supported' : 'not a parsable URL');
  }
  const params = parsed.searchParams;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || params.get('host') || '';
  if (!host) fail(url, 'no host');
  const database = decode(url, parsed.pathname.replace(/^\//, ''), 'database name');
  if (!database) fail(url, 'no database name');
  if (database.includes('/')) fail(url, `database name '${database}' contains '/'`);
  const port = parsed.port ? Number(parsed.port) : Number(params.get('port') ?? 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    fail(url, `port '${parsed.port || params.get('port')}' is not a TCP port`);

  const config: ClientConfig = { host, port, database };
  const user = decode(url, parsed.username, 'user name') || params.get('user');
  if (user) config.user = user;
  const password = parsed.password ? decode(url, parsed.password, 'password') : params.get('password');
  if (password) config.password = password;
  const ssl = sslFor(url, params.get('sslmode'));
  if (ssl !== undefined) config.ssl = ssl;

  const connectTimeoutSeconds = params.get('connect_timeout');
  if (connectTimeoutSeconds !== null) {
    const seconds = Number(connectTimeoutSeconds);
    if (!Number.isFinite(seconds) || seconds < 0)
      fail(url, `connect_timeout '${connectTimeoutSeconds}' is not a number of seconds`);
    if (seconds > 0) config.connectionTimeoutMillis = seconds * 1000;
  }
  if (options.timeoutMs !== undefined) {
    // The tighter of the URL's connect_timeout and ours.
    config.connectionTimeoutMillis = Math.min(config.connectionTimeoutMillis ?? Infinity, options.timeoutMs);
    config.statement_timeout = options.timeoutMs;
    config.query_timeout = options.timeoutMs;
  }
  const applicationName = options.applicationName ?? params.get('application_name');
  if (applicationName) config.application_name = applicationName;
  return config;
}

/** Whether a URL names a PostgreSQL database (the scheme only; parseDatabaseUrl validates the rest). */
export function isPostgresUrl(url: string): boolean {
  return typeof url === 'string' && POSTGRES_SCHEME.test(schemeOf(url));
}
