// The `airflow` CLI of a simulated image, run as an argv array in a container's context: `db
// downgrade`, `db migrate` (and 2.x `db upgrade`), `db check-migrations`, `db check`, `version`,
// `config get-value database sql_alchemy_conn`, and the python one-liner that prints `_REVISION_HEADS_MAP`. Outputs, messages and exit codes
// follow the real CLI (reference/airflow.md); the database is a real PostgreSQL.
import { redactConnectionString } from '../../../src/db/connection.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from '../../../src/core/versions.js';
import type { ExecResult } from '../types.js';
import { parseOptions, UsageError, type OptionSpec, type ParsedOptions } from './args.js';
import type { FaultInjector, FaultTarget } from './faults.js';
import { chainIndex, knowsRevision, pythonSet, resolveToVersion, type AirflowImage } from './image.js';
import { AbortedError, MigrationSession, sleep } from './metadata.js';

export interface CliIO {
  stdout(chunk: string): void;
  stderr(chunk: string): void;
  stdin: AsyncIterable<Buffer>;
  signal: AbortSignal;
}

export interface CliContext {
  image: AirflowImage;
  /** The container's metadata connection (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN); throws when unset. */
  databaseUrl(): Promise<string>;
  target: FaultTarget;
  faults: FaultInjector;
  /** Duration of one migration step. */
  stepDurationMs: number;
  /** Length of one of the CLI's "seconds" (check-migrations timeout and polling). */
  secondMs: number;
}

/** The exec connection went away without a status (a halfway fault with then: 'drop'). */
export class ExecConnectionDropped extends Error {
  override name = 'ExecConnectionDropped';
}

/** A Python exception: traceback on stderr, exit 1. */
class PythonError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** `raise SystemExit("…")`: the message on stderr, exit 1. */
class SystemExit extends Error {}

const EXIT_KILLED = 137;

const DOWNGRADE_OPTIONS: OptionSpec[] = [
  { short: '-n', long: '--to-version', dest: 'to_version', metavar: 'VERSION' },
  { short: '-r', long: '--to-revision', dest: 'to_revision', metavar: 'REVISION' },
  { short: '-s', long: '--show-sql-only', dest: 'show_sql_only' },
  { long: '--from-revision', dest: 'from_revision', metavar: 'REVISION' },
  { long: '--from-version', dest: 'from_version', metavar: 'VERSION' },
  { short: '-y', long: '--yes', dest: 'yes' },
  { short: '-v', long: '--verbose', dest: 'verbose' },
];
const MIGRATE_OPTIONS: OptionSpec[] = [
  { short: '-n', long: '--to-version', dest: 'to_version', metavar: 'VERSION' },
  { short: '-r', long: '--to-revision', dest: 'to_revision', metavar: 'REVISION' },
  { short: '-s', long: '--show-sql-only', dest: 'show_sql_only' },
  { long: '--from-revision', dest: 'from_revision', metavar: 'REVISION' },
  { long: '--from-version', dest: 'from_version', metavar: 'VERSION' },
  { short: '-m', long: '--use-migration-files', dest: 'use_migration_files' },
  { long: '--reserialize-dags', dest: 'reserialize_dags' },
  { short: '-v', long: '--verbose', dest: 'verbose' },
];
const CHECK_MIGRATIONS_OPTIONS: OptionSpec[] = [
  { short: '-t', long: '--migration-wait-timeout', dest: 'timeout', metavar: 'MIGRATION_WAIT_TIMEOUT' },
  { short: '-v', long: '--verbose', dest: 'verbose' },
];
const CHECK_OPTIONS: OptionSpec[] = [
  { long: '--retry', dest: 'retry', metavar: 'RETRY' },
  { long: '--retry-delay', dest: 'retry_delay', metavar: 'RETRY_DELAY' },
  { short: '-v', long: '--verbose', dest: 'verbose' },
];

const AIRFLOW_COMMANDS = [
  'api-server',
  'assets',
  'backfill',
  'cheat-sheet',
  'config',
  'connections',
  'dag-processor',
  'dags',
  'db',
  'info',
  'jobs',
  'kerberos',
  'plugins',
  'pools',
  'providers',
  'scheduler',
  'standalone',
  'tasks',
  'triggerer',
  'variables',
  'version',
  'celery',
  'webserver',
  'users',
];

const MIGRATE_SINCE = parseAirflowVersion('2.7.0') as AirflowVersion;

/** Runs one command line of an Airflow image. Throws ExecConnectionDropped for a dropped exec. */
export async function runAirflowCommand(ctx: CliContext, argv: readonly string[], io: CliIO): Promise<ExecResult> {
  try {
    return await dispatch(ctx, argv, io);
  } catch (error) {
    if (error instanceof ExecConnectionDropped) throw error;
    if (error instanceof AbortedError || io.signal.aborted)
      return { exitCode: EXIT_KILLED, message: 'killed: the client went away' };
    if (error instanceof UsageError) return usageFailure(io, argv, error.message);
    if (error instanceof SystemExit) {
      io.stderr(`${error.message}\n`);
      return { exitCode: 1 };
    }
    const python =
      error instanceof PythonError
        ? error
        : new PythonError('sqlalchemy.exc.OperationalError', `(psycopg2.OperationalError) ${messageOf(error)}`);
    io.stderr(traceback(python));
    return { exitCode: 1 };
  }
}

function usageFailure(io: CliIO, argv: readonly string[], message: string): ExecResult {
  const command = argv.slice(0, 3).join(' ');
  io.stderr(`Usage: ${command} [-h] ...\n\nairflow command error: ${message}, see help above.\n`);
  return { exitCode: 2 };
}

function traceback(error: PythonError): string {
  return [
    'Traceback (most recent call last):',
    '  File "/home/airflow/.local/bin/airflow", line 8, in <module>',
    '    sys.exit(main())',
    '  File "/home/airflow/.local/lib/python3.12/site-packages/airflow/__main__.py", line 55, in main',
    '    args.func(args)',
    `${error.type}: ${error.message}`,
    '',
  ].join('\n');
}

function messageOf(error: unknown): string {
  return redactConnectionString(error instanceof Error ? error.message : String(error));
}

async function dispatch(ctx: CliContext, argv: readonly string[], io: CliIO): Promise<ExecResult> {
  const [program, ...rest] = argv;
  const name = program?.split('/').pop();
  if (name === 'python' || name === 'python3') return runPython(ctx, rest, io);
  if (name !== 'airflow') return commandNotFound(io, program);
  const [command, sub, ...options] = rest;
  if (command === undefined) throw new UsageError('the following arguments are required: GROUP_OR_COMMAND');
  if (command === 'version') {
    parseOptions([], rest.slice(1));
    io.stdout(`${ctx.image.version.text}\n`);
    return { exitCode: 0 };
  }
  if (
    !AIRFLOW_COMMANDS.includes(command) ||
    (command === 'webserver' && ctx.image.version.major >= 3) ||
    (command === 'api-server' && ctx.image.version.major < 3)
  ) {
    throw new UsageError(`argument GROUP_OR_COMMAND: invalid choice: '${command}'`);
  }
  if (command === 'config' && sub === 'get-value') return configGetValue(ctx, options, io);
  if (command !== 'db') {
    // Commands that do not touch the schema (users create, dags reserialize, …) succeed without effect.
    io.stdout(`airflow ${[command, sub].filter(Boolean).join(' ')}: done (simulated image, no effect on the schema)\n`);
    return { exitCode: 0 };
  }
  return runDb(ctx, sub, options, io);
}

/**
 * `airflow config get-value SECTION OPTION`: the simulated image's configuration is its metadata
 * connection (however the container sets it: env, secretKeyRef, _CMD); other options are unknown.
 */
async function configGetValue(ctx: CliContext, args: string[], io: CliIO): Promise<ExecResult> {
  const [section, option, ...extra] = args;
  if (section === undefined || option === undefined)
    throw new UsageError('the following arguments are required: section, option');
  if (extra.length > 0) throw new UsageError(`unrecognized arguments: ${extra.join(' ')}`);
  const connection =
    option === 'sql_alchemy_conn' && (section === 'database' || (section === 'core' && ctx.image.version.major < 3));
  if (!connection) {
    io.stderr(`The option [${section}/${option}] is not found in config.\n`);
    return { exitCode: 1 };
  }
  io.stdout(`${await ctx.databaseUrl()}\n`);
  return { exitCode: 0 };
}

function commandNotFound(io: CliIO, program: string | undefined): ExecResult {
  const message = `exec: "${program ?? ''}": executable file not found in $PATH`;
  io.stderr(`${message}\n`);
  return { exitCode: 127, message };
}

async function runDb(ctx: CliContext, sub: string | undefined, options: string[], io: CliIO): Promise<ExecResult> {
  const legacy = compareVersions(ctx.image.version, MIGRATE_SINCE) < 0;
  const is3 = ctx.image.version.major >= 3;
  switch (sub) {
    case 'downgrade':
      return downgrade(ctx, parseOptions(DOWNGRADE_OPTIONS, options), io);
    case 'migrate':
      if (legacy) break;
      return migrate(ctx, parseOptions(MIGRATE_OPTIONS, options), io);
    case 'upgrade':
      if (is3) break;
      if (!legacy) io.stderr('DeprecationWarning: `db upgrade` is deprecated. Use `db migrate` instead.\n');
      return migrate(ctx, parseOptions(MIGRATE_OPTIONS, options), io);
    case 'check-migrations':
      return checkMigrations(ctx, parseOptions(CHECK_MIGRATIONS_OPTIONS, options), io);
    case 'check':
      parseOptions(CHECK_OPTIONS, options);
      return dbCheck(ctx, io);
    case undefined:
      throw new UsageError('the following arguments are required: COMMAND');
  }
  throw new UsageError(`argument COMMAND: invalid choice: '${sub}'`);
}

// ---- logging in the image's style ----

function logLine(ctx: CliContext, level: 'info' | 'warning', source: string, message: string): string {
  const now = new Date().toISOString();
  if (ctx.image.version.major >= 3) return `${now.replace('Z', '000Z')} [${level.padEnd(9)}] ${message} [${source}]\n`;
  return `[${now.replace('Z', '+0000')}] {${source}} ${level.toUpperCase()} - ${message}\n`;
}

function log(ctx: CliContext, io: CliIO, message: string, level: 'info' | 'warning' = 'info'): void {
  io.stdout(logLine(ctx, level, 'db.py', message));
}

function alembicLog(io: CliIO, message: string): void {
  io.stdout(`INFO  [alembic.runtime.migration] ${message}\n`);
}

// ---- shared by migrate and downgrade ----

function versionOfRevision(image: AirflowImage, revision: string): string {
  return image.releaseOfRevision.get(revision) ?? 'unknown';
}

function cantLocate(revision: string): PythonError {
  return new PythonError('alembic.util.exc.CommandError', `Can't locate revision identified by '${revision}'`);
}

function checkFromToOptions(opts: ParsedOptions): void {
  if (opts.to_revision && opts.to_version)
    throw new SystemExit('Cannot supply both `--to-revision` and `--to-version`.');
  if (opts.from_version && opts.from_revision)
    throw new SystemExit('`--from-revision` may not be combined with `--from-version`');
  if ((opts.from_revision || opts.from_version) && !opts.show_sql_only) {
    throw new SystemExit('Args `--from-revision` and `--from-version` may only be used with `--show-sql-only`');
  }
}

function fromRevisionOption(ctx: CliContext, opts: ParsedOptions): string | undefined {
  if (typeof opts.from_revision === 'string') return opts.from_revision;
  if (typeof opts.from_version === 'string') {
    const revision = resolveToVersion(ctx.image, opts.from_version);
    if (!revision) throw new SystemExit(`Unknown version '${opts.from_version}' supplied as \`--from-version\`.`);
    return revision;
  }
  return undefined;
}

async function openSession(ctx: CliContext, io: CliIO): Promise<MigrationSession> {
  const dbError = ctx.faults.peek(ctx.target, ['db-error']);
  if (dbError)
    throw new PythonError(
      'sqlalchemy.exc.OperationalError',
      `(psycopg2.OperationalError) ${dbError.message ?? 'connection to server failed: Connection refused'}`,
    );
  const url = await ctx.databaseUrl();
  return MigrationSession.open(url, io.signal);
}

/**
 * Runs the migrations between two chain positions one revision at a time, as Alembic does.
 * `stepDurationMs` is what one release's migrations take together (split over its revisions), and
 * a halfway fault stops after `steps` releases' migrations, so the database is left at a head.
 */
async function walk(
  ctx: CliContext,
  io: CliIO,
  session: MigrationSession,
  path: string[],
  direction: 'upgrade' | 'downgrade',
): Promise<void> {
  const halfway = path.length > 1 ? ctx.faults.take(ctx.target, ['exec-halfway']) : undefined;
  const heads = new Set(Object.values(ctx.image.headsMap));
  let releasesDone = 0;
  for (let i = 1; i < path.length; i += 1) {
    if (halfway && releasesDone === halfway.steps) await stopHalfway(halfway.then ?? 'exit', io);
    const from = path[i - 1] as string;
    const to = path[i] as string;
    // Upgrading applies `to`'s migration; downgrading reverts `from`'s.
    const release = ctx.image.releaseOfRevision.get(direction === 'upgrade' ? to : from) ?? 'unknown';
    alembicLog(
      io,
      `Running ${direction} ${from} -> ${to}, ${direction === 'downgrade' ? 'Downgrade to' : 'Upgrade to'} Airflow ${versionOfRevision(ctx.image, to)} schema`,
    );
    await session.step(from, to, ctx.stepDurationMs / revisionsOf(ctx.image, release));
    if (heads.has(to)) releasesDone += 1;
  }
}

function revisionsOf(image: AirflowImage, release: string): number {
  let count = 0;
  for (const introducedIn of image.releaseOfRevision.values()) if (introducedIn === release) count += 1;
  return Math.max(1, count);
}

async function stopHalfway(then: 'exit' | 'drop' | 'hang', io: CliIO): Promise<never> {
  if (then === 'drop') throw new ExecConnectionDropped('the exec connection dropped without a status');
  if (then === 'hang') {
    await new Promise<never>((_, reject) =>
      io.signal.addEventListener('abort', () => reject(new AbortedError('aborted')), { once: true }),
    );
  }
  throw new PythonError(
    'sqlalchemy.exc.OperationalError',
    '(psycopg2.OperationalError) server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.',
  );
}

function sqlFor(path: string[]): string {
  const lines = ['BEGIN;', ''];
  for (let i = 1; i < path.length; i += 1) {
    lines.push(
      `-- Running ${path[i - 1]} -> ${path[i]}`,
      '',
      `UPDATE alembic_version SET version_num='${path[i]}' WHERE alembic_version.version_num = '${path[i - 1]}';`,
      '',
    );
  }
  lines.push('COMMIT;', '');
  return lines.join('\n');
}

/** Reads one line from stdin like Python's input(); undefined on EOF. */
async function readLine(io: CliIO): Promise<string | undefined> {
  let text = '';
  for await (const chunk of io.stdin) {
    if (io.signal.aborted) throw new AbortedError('aborted');
    text += chunk.toString('utf8');
    const newline = text.indexOf('\n');
    if (newline >= 0) return text.slice(0, newline).replace(/\r$/, '');
  }
  if (io.signal.aborted) throw new AbortedError('aborted');
  return text === '' ? undefined : text;
}

// ---- airflow db downgrade ----

async function downgrade(ctx: CliContext, opts: ParsedOptions, io: CliIO): Promise<ExecResult> {
  checkFromToOptions(opts);
  if (!opts.to_version && !opts.to_revision) throw new SystemExit('Must provide either --to-revision or --to-version.');
  const fromRevision = fromRevisionOption(ctx, opts);
  let toRevision: string;
  if (typeof opts.to_version === 'string') {
    const resolved = resolveToVersion(ctx.image, opts.to_version);
    if (!resolved) throw new SystemExit(`Downgrading to version ${opts.to_version} is not supported.`);
    toRevision = resolved;
  } else {
    toRevision = opts.to_revision as string;
  }
  const showSql = opts.show_sql_only === true;
  if (showSql) io.stdout('Generating sql for downgrade -- downgrade commands will be printed to stdout.\n');
  else io.stdout(`Performing downgrade with database ${redactConnectionString(await ctx.databaseUrl())}\n`);
  if (!opts.yes) {
    io.stdout(
      '\nWarning: About to reverse schema migrations for the airflow metastore. Please ensure you have backed up your database before any upgrade or downgrade operation. Proceed? (y/n)\n',
    );
    const answer = await readLine(io);
    if (answer === undefined) throw new PythonError('EOFError', 'EOF when reading a line');
    if (answer.toUpperCase() !== 'Y') throw new SystemExit('Cancelled');
  }
  log(ctx, io, `Attempting downgrade to revision ${toRevision}`);
  const session = await openSession(ctx, io);
  try {
    await session.lockMigrations();
    const current = await session.currentRevision();
    if (showSql) {
      log(ctx, io, 'Generating sql scripts for manual migration.', 'warning');
      io.stdout(sqlFor(downgradePath(ctx.image, fromRevision ?? current, toRevision)));
    } else {
      log(ctx, io, 'Applying downgrade migrations to Airflow database.');
      alembicLog(io, 'Context impl PostgresqlImpl.');
      alembicLog(io, 'Will assume transactional DDL.');
      await walk(ctx, io, session, downgradePath(ctx.image, current, toRevision), 'downgrade');
    }
    await session.unlockMigrations();
  } finally {
    await session.close();
  }
  if (!showSql) io.stdout('Downgrade complete\n');
  return { exitCode: 0 };
}

/** Revisions from current down to target inclusive, as Alembic would walk them. */
function downgradePath(image: AirflowImage, current: string | null, target: string): string[] {
  if (current !== null && !knowsRevision(image, current)) throw cantLocate(current);
  if (!knowsRevision(image, target)) throw cantLocate(target);
  const from = current === null ? -1 : chainIndex(image, current);
  const to = chainIndex(image, target);
  if (to > from) {
    throw new PythonError(
      'alembic.util.exc.CommandError',
      `Destination ${target} is not a valid downgrade target from current head(s)`,
    );
  }
  return image.chain.slice(to, from + 1).reverse();
}

// ---- airflow db migrate ----

async function migrate(ctx: CliContext, opts: ParsedOptions, io: CliIO): Promise<ExecResult> {
  checkFromToOptions(opts);
  const fromRevision = fromRevisionOption(ctx, opts);
  let toRevision: string | undefined;
  if (typeof opts.to_version === 'string') {
    toRevision = resolveToVersion(ctx.image, opts.to_version);
    if (!toRevision) throw new SystemExit(`Upgrading to version ${opts.to_version} is not supported.`);
  } else if (typeof opts.to_revision === 'string') {
    toRevision = opts.to_revision;
  }
  const target = toRevision ?? ctx.image.head;
  const showSql = opts.show_sql_only === true;
  if (showSql) io.stdout('Generating sql for upgrade -- upgrade commands will be printed to stdout.\n');
  else io.stdout(`Performing upgrade to the metadata database ${redactConnectionString(await ctx.databaseUrl())}\n`);
  const session = await openSession(ctx, io);
  try {
    await session.lockMigrations();
    const current = await session.currentRevision();
    if (showSql) {
      io.stdout(sqlFor(upgradePath(ctx.image, fromRevision ?? current, target)));
    } else if (current === null) {
      if (!knowsRevision(ctx.image, target)) throw cantLocate(target);
      log(ctx, io, 'Creating tables');
      alembicLog(io, 'Context impl PostgresqlImpl.');
      alembicLog(io, 'Will assume transactional DDL.');
      await session.stamp(target);
      alembicLog(io, `Running stamp_revision  -> ${target}`);
    } else {
      alembicLog(io, 'Context impl PostgresqlImpl.');
      alembicLog(io, 'Will assume transactional DDL.');
      const path = upgradePath(ctx.image, current, target);
      if (path.length <= 1)
        log(ctx, io, 'There are no migrations to apply; the database is at the requested revision.');
      else log(ctx, io, `Migrating the Airflow database from ${current} to ${target}`);
      await walk(ctx, io, session, path, 'upgrade');
    }
    await session.unlockMigrations();
  } finally {
    await session.close();
  }
  if (!showSql) io.stdout('Database migrating done!\n');
  return { exitCode: 0 };
}

/** Revisions from current up to target inclusive; empty walk when target is already applied. */
function upgradePath(image: AirflowImage, current: string | null, target: string): string[] {
  if (current !== null && !knowsRevision(image, current)) throw cantLocate(current);
  if (!knowsRevision(image, target)) throw cantLocate(target);
  const from = current === null ? 0 : chainIndex(image, current);
  const to = chainIndex(image, target);
  return to <= from ? [target] : image.chain.slice(from, to + 1);
}

// ---- airflow db check-migrations / db check ----

async function checkMigrations(ctx: CliContext, opts: ParsedOptions, io: CliIO): Promise<ExecResult> {
  let timeout = 60;
  if (typeof opts.timeout === 'string') {
    if (!/^[+-]?\d+$/.test(opts.timeout.trim())) {
      throw new UsageError(`argument -t/--migration-wait-timeout: invalid int value: '${opts.timeout}'`);
    }
    timeout = Number(opts.timeout);
  }
  const ticks = timeout || 1;
  const sourceHeads = pythonSet([ctx.image.head]);
  let dbHeads = 'set()';
  for (let ticker = 0; ticker < ticks; ticker += 1) {
    const revision = await readRevisionOnce(ctx, io);
    dbHeads = pythonSet(revision === null ? [] : [revision]);
    if (revision === ctx.image.head) return { exitCode: 0 };
    await sleep(ctx.secondMs, io.signal);
    log(ctx, io, `Waiting for migrations... ${ticker} second(s)`);
  }
  throw new PythonError(
    'TimeoutError',
    `There are still unapplied migrations after ${ticks} seconds. MigrationHead(s) in DB: ${dbHeads} | Migration Head(s) in Source Code: ${sourceHeads}`,
  );
}

async function readRevisionOnce(ctx: CliContext, io: CliIO): Promise<string | null> {
  const session = await openSession(ctx, io);
  try {
    return await session.currentRevision();
  } finally {
    await session.close();
  }
}

async function dbCheck(ctx: CliContext, io: CliIO): Promise<ExecResult> {
  await readRevisionOnce(ctx, io);
  log(ctx, io, 'Connection successful.');
  return { exitCode: 0 };
}

// ---- python -c: only the _REVISION_HEADS_MAP one-liner ----

const HEADS_MAP_IMPORT = /from airflow\.utils\.db import _REVISION_HEADS_MAP/;
const HEADS_MAP_PRINT = /print\(\s*json\.dumps\(\s*_REVISION_HEADS_MAP\s*\)\s*\)/;

function runPython(ctx: CliContext, args: string[], io: CliIO): ExecResult {
  const [flag, code, ...extra] = args;
  if (
    flag !== '-c' ||
    code === undefined ||
    extra.length > 0 ||
    !HEADS_MAP_IMPORT.test(code) ||
    !HEADS_MAP_PRINT.test(code)
  ) {
    io.stderr(
      'simulated python: only `python -c "from airflow.utils.db import _REVISION_HEADS_MAP; import json; print(json.dumps(_REVISION_HEADS_MAP))"` is available\n',
    );
    return { exitCode: 1 };
  }
  // json.dumps default separators: ', ' and ': '.
  const body = Object.entries(ctx.image.headsMap).map(
    ([version, head]) => `${JSON.stringify(version)}: ${JSON.stringify(head)}`,
  );
  io.stdout(`{${body.join(', ')}}\n`);
  return { exitCode: 0 };
}
