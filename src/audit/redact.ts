// Keeps secrets out of audit records and log lines: Secret data, passwords in URLs and libpq
// conninfo strings, sensitive env values (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, *_PASSWORD,
// tokens, Fernet keys) and sensitive keys anywhere in a JSON document.
import type { AuditRecord } from './records.js';

export const REDACTED = '***';

// scheme://user:password@host → scheme://user:***@host (also when the user is empty).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s/]+)@/gi;
// password=secret in conninfo strings and command lines (`password='a b'` too).
const KEYWORD_PASSWORD = /\b(password|passwd|pwd)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s;&]+)/gi;

const SENSITIVE_ENV_NAME =
  /(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY|FERNET_KEY|_CONN$|_CONN_|^AIRFLOW_CONN_|SQL_ALCHEMY_CONN)/i;
const SENSITIVE_KEY =
  /^(password|passwd|token|secret|authorization|apikey|api_key|bearer|clientsecret|client_secret|privatekey|private_key)$/i;
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export function redactText(text: string): string {
  if (!text.includes('://') && !/pass|pwd/i.test(text)) return text; // cheap common case
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(KEYWORD_PASSWORD, `$1$2${REDACTED}`);
}

// Parsed JSON objects only: class instances (a Date, already serialised text) pass unchanged.
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function redactSecretData(data: unknown): unknown {
  if (!isPlainObject(data)) return REDACTED;
  return Object.fromEntries(Object.keys(data).map((key) => [key, REDACTED]));
}

function redactLastApplied(text: string): string {
  try {
    return JSON.stringify(redactJson(JSON.parse(text)));
  } catch {
    return REDACTED;
  }
}

function isEnvEntry(value: Record<string, unknown>): boolean {
  return typeof value.name === 'string' && ('value' in value || 'valueFrom' in value);
}

/** A deep copy of a JSON value with secrets replaced by '***'. */
export function redactJson(value: unknown): unknown {
  return redactValue(value, 0, new Set());
}

function redactValue(value: unknown, depth: number, ancestors: Set<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 64) return REDACTED; // hostile nesting: refuse rather than recurse forever
  if (ancestors.has(value)) return '[Circular]';
  ancestors.add(value);
  try {
    return Array.isArray(value)
      ? value.map((item) => redactValue(item, depth + 1, ancestors))
      : redactObject(value, depth, ancestors);
  } finally {
    ancestors.delete(value);
  }
}

function redactObject(value: object, depth: number, ancestors: Set<object>): unknown {
  if (!isPlainObject(value)) return value;
  const isSecret = value.kind === 'Secret';
  const envSecret = isEnvEntry(value) && SENSITIVE_ENV_NAME.test(value.name as string);
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (isSecret && (key === 'data' || key === 'stringData')) out[key] = redactSecretData(child);
    else if (envSecret && key === 'value') out[key] = REDACTED;
    else if (key === LAST_APPLIED && typeof child === 'string') out[key] = redactLastApplied(child);
    else if (SENSITIVE_KEY.test(key) && typeof child === 'string') out[key] = REDACTED;
    else out[key] = redactValue(child, depth + 1, ancestors);
  }
  return out;
}

/** Redacts the free-text fields of a record, and its raw request deeply. */
export function redactRecord<T extends AuditRecord>(record: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (key === 'request') out[key] = redactJson(value);
    else if (typeof value === 'string') out[key] = redactText(value);
    else if (Array.isArray(value)) out[key] = value.map((item) => (typeof item === 'string' ? redactText(item) : item));
    else out[key] = value;
  }
  return out as T;
}
