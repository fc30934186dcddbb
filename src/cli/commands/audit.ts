// `airflow-downgrade-guard audit`: reads the audit store with filters and prints a table, a
// per-operation timeline or JSON lines. Exit 0 on success, 1 when the store cannot be read,
// 2 for bad flags.
import type { Command } from 'commander';
import pg from 'pg';
import { formatRecords, OUTPUT_FORMATS, type OutputFormat } from '../../audit/format.js';
import { DEFAULT_AUDIT_SCHEMA, quoteSchema } from '../../audit/migrations.js';
import { RECORD_KINDS, type RecordKind } from '../../audit/records.js';
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, queryAudit, type AuditQuery } from '../../audit/store.js';
import { parseDatabaseUrl, redactConnectionString } from '../../db/connection.js';
import { USAGE_EXIT_CODE, UsageArgumentError } from './manifests.js';

export const AUDIT_DATABASE_URL_ENV = 'ADG_AUDIT_DATABASE_URL';
export const AUDIT_SCHEMA_ENV = 'ADG_AUDIT_SCHEMA';

export interface AuditCliOptions {
  databaseUrl?: string;
  schema?: string;
  release?: string;
  namespace?: string;
  operation?: string;
  decision?: string;
  user?: string;
  kind?: RecordKind;
  since?: Date;
  until?: Date;
  limit: number;
  output: OutputFormat;
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30m`, `24h`, `7d` (before now) or an ISO 8601 time. */
export function parseTimeFlag(value: string, now: number = Date.now()): Date {
  const relative = /^(\d{1,9})([smhdw])$/.exec(value.trim());
  if (relative) return new Date(now - Number(relative[1]) * (UNIT_MS[relative[2] as string] ?? 0));
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    const parsed = Date.parse(value.trim());
    if (!Number.isNaN(parsed)) return new Date(parsed);
  }
  throw new UsageArgumentError(
    `expected a duration like 30m, 24h, 7d or an ISO time like 2025-06-01T10:00:00Z, got '${value}'`,
  );
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new UsageArgumentError(`must be a whole number from 1 to ${MAX_QUERY_LIMIT}`);
  }
  return limit;
}

function parseOutput(value: string): OutputFormat {
  if (!(OUTPUT_FORMATS as readonly string[]).includes(value)) {
    throw new UsageArgumentError(`must be one of ${OUTPUT_FORMATS.join(', ')}`);
  }
  return value as OutputFormat;
}

function parseKind(value: string): RecordKind {
  if (!(RECORD_KINDS as readonly string[]).includes(value))
    throw new UsageArgumentError(`must be one of ${RECORD_KINDS.join(', ')}`);
  return value as RecordKind;
}

function parseSchema(value: string): string {
  try {
    quoteSchema(value);
  } catch (error) {
    throw new UsageArgumentError((error as Error).message);
  }
  return value;
}

function toQuery(options: AuditCliOptions, schema: string): AuditQuery {
  const query: AuditQuery = { limit: options.limit, schema };
  if (options.release !== undefined) query.release = options.release;
  if (options.namespace !== undefined) query.namespace = options.namespace;
  if (options.operation !== undefined) query.operationId = options.operation;
  if (options.decision !== undefined) query.decision = options.decision;
  if (options.user !== undefined) query.user = options.user;
  if (options.kind !== undefined) query.kind = options.kind;
  if (options.since !== undefined) query.since = options.since;
  if (options.until !== undefined) query.until = options.until;
  return query;
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const text = message.split('\n')[0] ?? message;
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}

/** Runs the query and prints the result; returns the exit code. */
export async function runAudit(options: AuditCliOptions, io: CliIo): Promise<number> {
  const url = options.databaseUrl ?? io.env[AUDIT_DATABASE_URL_ENV];
  if (!url) {
    io.stderr(`error: no audit database: pass --database-url or set ${AUDIT_DATABASE_URL_ENV}\n`);
    return USAGE_EXIT_CODE;
  }
  const schema = options.schema ?? io.env[AUDIT_SCHEMA_ENV] ?? DEFAULT_AUDIT_SCHEMA;
  let config: pg.ClientConfig;
  try {
    quoteSchema(schema);
    config = parseDatabaseUrl(url, {
      timeoutMs: 10_000,
      applicationName: 'airflow-downgrade-guard-audit-cli',
      role: 'audit',
    });
  } catch (error) {
    io.stderr(`error: ${(error as Error).message}\n`);
    return USAGE_EXIT_CODE;
  }
  if (options.since && options.until && options.since >= options.until) {
    io.stderr('error: --since must be before --until\n');
    return USAGE_EXIT_CODE;
  }
  const where = redactConnectionString(url);
  const client = new pg.Client(config);
  client.on('error', () => undefined); // a dropped connection surfaces as the query's error
  try {
    await client.connect();
  } catch (error) {
    io.stderr(`cannot reach the audit database at ${where}: ${oneLine(error)}\n`);
    return 1;
  }
  try {
    const records = await queryAudit(client, toQuery(options, schema));
    io.stdout(formatRecords(records, options.output));
    return 0;
  } catch (error) {
    if ((error as { code?: unknown }).code === '42P01') {
      io.stderr(
        `the audit database at ${where} has no audit records (schema ${schema} not created yet: no guard has written to it)\n`,
      );
    } else {
      io.stderr(`cannot read the audit database at ${where}: ${oneLine(error)}\n`);
    }
    return 1;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const HELP_AFTER = `
Times: --since/--until take a duration before now (30m, 24h, 7d, 2w) or an ISO time.
Outputs:
  table     one line per record: time, kind, namespace/release, object, decision or step,
            outcome, user, operation, latency or duration
  timeline  per operation: the admissions that opened and joined it, then each step with its
            duration, exec pod, command and outcome, and operator actions
  json      JSON lines, one record per line (stable camelCase fields) for other tools

Replay a recorded admission with \`review\` (Secret data in stored requests is redacted):
  airflow-downgrade-guard audit --kind admission --release airflow --output json \\
    | jq -c 'select(.requestUid == "<uid>") | {apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request}' \\
    > review.json
  airflow-downgrade-guard review --file review.json

Exit codes: 0 ok, 1 audit database unreachable or unreadable, 2 bad flags.`;

// commander's own parse errors exit 1; for this command every one of them is a bad flag.
const USAGE_ERROR_CODES = new Set([
  'commander.unknownOption',
  'commander.missingArgument',
  'commander.optionMissingArgument',
  'commander.missingMandatoryOptionValue',
  'commander.excessArguments',
  'commander.conflictingOption',
  'commander.invalidArgument',
]);

export function register(program: Command): void {
  program
    .command('audit')
    .description('review the audit log: admission decisions, operation steps and operator actions')
    .option('--database-url <url>', `audit database URL (default: env ${AUDIT_DATABASE_URL_ENV})`)
    .option(
      '--schema <name>',
      `schema of the audit tables (default: env ${AUDIT_SCHEMA_ENV} or ${DEFAULT_AUDIT_SCHEMA})`,
      parseSchema,
    )
    .option('--release <name>', 'only this Airflow release')
    .option('--namespace <ns>', 'only this namespace')
    .option('--operation <id>', 'only this downgrade operation')
    .option(
      '--decision <decision>',
      'only this admission decision (downgrade, same-head, …) or operator action (retry, abort, break-glass)',
    )
    .option('--user <user>', 'only records by this user (admissions, operator actions) or actor (operation steps)')
    .option('--kind <kind>', `only this record kind (${RECORD_KINDS.join(', ')})`, parseKind)
    .option('--since <time>', 'records at or after this time (24h, 30m, 7d or ISO)', (v: string) => parseTimeFlag(v))
    .option('--until <time>', 'records before this time (24h, 30m, 7d or ISO)', (v: string) => parseTimeFlag(v))
    .option('--limit <n>', 'at most this many records, the newest', parseLimit, DEFAULT_QUERY_LIMIT)
    .option('--output <format>', `${OUTPUT_FORMATS.join(' | ')}`, parseOutput, 'table' as OutputFormat)
    .addHelpText('after', HELP_AFTER)
    .exitOverride((error) => {
      process.exit(USAGE_ERROR_CODES.has(error.code) ? USAGE_EXIT_CODE : error.exitCode);
    })
    .action(async (options: AuditCliOptions) => {
      const code = await runAudit(options, {
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stderr.write(text),
        env: process.env,
      });
      if (code !== 0) process.exitCode = code;
    });
}
