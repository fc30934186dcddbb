// `retry OP`: resume a held operation (from where it stopped when that is safe, else from confirm).
// Also the shared runner of `abort`. OP is an operation id or `<namespace>/<release>`. With an
// audit database the action is recorded as an `operator-action` record; the store is checked
// before anything changes, so an audited action is never left unrecorded.
// Exit 0 done, 1 refused or failed (one line), 2 bad flags.
import type { Command } from 'commander';
import { pino } from 'pino';
import { createAuditLog, type AuditLog } from '../../audit/log.js';
import { DEFAULT_AUDIT_SCHEMA } from '../../audit/migrations.js';
import type { OperatorActionName } from '../../audit/records.js';
import type { OperationState } from '../../coordinator/operation.js';
import {
  OperatorActionError,
  abortOperation,
  findOperation,
  retryOperation,
} from '../../coordinator/operator-actions.js';
import { redactConnectionString } from '../../db/connection.js';
import { ClusterAccessError, connect, describeClusterError, firstLine, type KubeConnection } from '../../plan/kube.js';
import { AUDIT_DATABASE_URL_ENV, AUDIT_SCHEMA_ENV } from './audit.js';

export interface OperatorCliOptions {
  kubeconfig?: string;
  namespace?: string;
  user?: string;
  reason?: string;
  auditDatabaseUrl?: string;
  auditSchema?: string;
}

export interface OperatorIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

type Action = Extract<OperatorActionName, 'retry' | 'abort'>;

const ACTIONS: Record<
  Action,
  (connection: KubeConnection, op: OperationState, user: string) => Promise<OperationState>
> = {
  retry: (c, op, user) => retryOperation(c.cluster, op, user),
  abort: (c, op, user) => abortOperation(c.cluster, op, user),
};

async function openAudit(url: string, schema: string, io: OperatorIo): Promise<AuditLog | undefined> {
  let audit: AuditLog;
  try {
    audit = createAuditLog({ databaseUrl: url, schema, logger: pino({ level: 'silent' }), retryMinMs: 200 });
  } catch (error) {
    io.stderr(`error: audit database: ${firstLine(error)}\n`);
    return undefined;
  }
  if (await audit.start()) return audit;
  const why = audit.stats().lastError ?? 'unreachable';
  await audit.close(100);
  io.stderr(
    `error: cannot reach the audit database at ${redactConnectionString(url)}: ${why}; nothing changed (the action is only taken when it can be recorded)\n`,
  );
  return undefined;
}

async function closeAudit(audit: AuditLog | undefined, io: OperatorIo): Promise<void> {
  if (!audit) return;
  const stats = await audit.close(10_000);
  if (stats.buffered > 0 || stats.dropped > 0) {
    io.stderr(
      `warning: the operator-action audit record was not stored${stats.lastError ? `: ${stats.lastError}` : ''}\n`,
    );
  }
}

export async function runOperatorAction(
  action: Action,
  ref: string,
  options: OperatorCliOptions,
  io: OperatorIo,
): Promise<number> {
  let connection: KubeConnection;
  try {
    connection = connect(options.kubeconfig);
  } catch (error) {
    if (error instanceof ClusterAccessError) {
      io.stderr(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const auditUrl = options.auditDatabaseUrl ?? io.env[AUDIT_DATABASE_URL_ENV];
  let audit: AuditLog | undefined;
  try {
    if (auditUrl) {
      audit = await openAudit(auditUrl, options.auditSchema ?? io.env[AUDIT_SCHEMA_ENV] ?? DEFAULT_AUDIT_SCHEMA, io);
      if (!audit) return 1;
    }
    const user = options.user ?? connection.user;
    let op: OperationState;
    try {
      op = await findOperation(connection.cluster, ref, options.namespace);
    } catch (error) {
      io.stderr(
        `error: ${error instanceof OperatorActionError ? error.message : describeClusterError(error, connection.server)}\n`,
      );
      return 1;
    }
    const record = {
      kind: 'operator-action',
      action,
      user,
      namespace: op.namespace,
      release: op.release,
      operationId: op.id,
      ...(options.reason ? { reason: options.reason } : {}),
    } as const;
    try {
      const updated = await ACTIONS[action](connection, op, user);
      audit?.append({ ...record, outcome: 'ok' });
      io.stdout(
        `${action}: operation ${op.id} (${op.namespace}/${op.release}, ${op.fromVersion} -> ${op.toVersion}) ${op.phase} -> ${updated.phase}, by ${user}\n`,
      );
      return 0;
    } catch (error) {
      const message =
        error instanceof OperatorActionError
          ? `${action} refused: ${error.message}`
          : `${action} failed: ${describeClusterError(error, connection.server)}`;
      audit?.append({ ...record, outcome: 'failed', error: message });
      io.stderr(`error: ${message}\n`);
      return 1;
    }
  } finally {
    await closeAudit(audit, io);
    connection.close();
  }
}

/** The options retry and abort share. */
export function operatorCommand(program: Command, action: Action, description: string, help: string): void {
  program
    .command(`${action} <operation>`)
    .description(description)
    .option('--kubeconfig <path>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster)')
    .option('-n, --namespace <ns>', 'look for the operation only in this namespace')
    .option(
      '--user <name>',
      "who takes the action, for the operation's history and the audit (default: the kubeconfig's user)",
    )
    .option('--reason <text>', 'why, for the audit record')
    .option(
      '--audit-database-url <url>',
      `record the action in this audit database (default: env ${AUDIT_DATABASE_URL_ENV})`,
    )
    .option(
      '--audit-schema <name>',
      `schema of the audit tables (default: env ${AUDIT_SCHEMA_ENV} or ${DEFAULT_AUDIT_SCHEMA})`,
    )
    .addHelpText(
      'after',
      `\n<operation> is an operation id (dg-…) or <namespace>/<release>.\n${help}\nExit codes: 0 done, 1 refused or failed, 2 bad flags.`,
    )
    .action(async (ref: string, options: OperatorCliOptions) => {
      const code = await runOperatorAction(action, ref, options, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        env: process.env,
      });
      if (code !== 0) process.exitCode = code;
    });
}

export function register(program: Command): void {
  operatorCommand(
    program,
    'retry',
    'resume a held downgrade operation after its cause is fixed',
    'Only held operations can be retried; they resume at drain or release when they stopped there, else at confirm.',
  );
}
