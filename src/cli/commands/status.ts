// `status`: the downgrade operations the cluster holds (operation ConfigMaps), in progress first,
// with their current step. Exit 0, 1 when the cluster cannot be read (one line), 2 bad flags.
import type { Command } from 'commander';
import {
  listOperations,
  operationStatus,
  sortForStatus,
  type OperationStatus,
} from '../../coordinator/operator-actions.js';
import { ClusterAccessError, connect, describeClusterError, type KubeConnection } from '../../plan/kube.js';
import { UsageArgumentError } from './manifests.js';

export const STATUS_OUTPUTS = ['table', 'json'] as const;
export type StatusOutput = (typeof STATUS_OUTPUTS)[number];

export interface StatusCliOptions {
  kubeconfig?: string;
  namespace?: string;
  output: StatusOutput;
}

export interface StatusIo {
  stdout(text: string): void;
  stderr(text: string): void;
  now?: () => Date;
}

const COLUMNS: Array<{ title: string; value: (s: OperationStatus) => string }> = [
  { title: 'RELEASE', value: (s) => `${s.namespace}/${s.release}` },
  { title: 'OPERATION', value: (s) => s.id },
  { title: 'PHASE', value: (s) => s.phase },
  // A target told by a resolution says so (the tag did not); `--output json` has what was found.
  {
    title: 'FROM -> TO',
    value: (s) => `${s.fromVersion} -> ${s.toVersion}${s.resolved ? ` (resolved in ${s.resolved.durationMs} ms)` : ''}`,
  },
  { title: 'STEP', value: (s) => s.step },
  { title: 'AGE', value: (s) => s.age },
  // A stall (not yet held) shows its reason here too: it becomes the held reason after the stall bound.
  {
    title: 'HELD REASON',
    value: (s) => s.heldReason ?? (s.stalled ? `stalled since ${s.stalled.since}: ${s.stalled.reason}` : ''),
  },
];

// The held reason is last: it may run long without breaking the columns before it.
const MAX_CELL = 80;
const MAX_LAST_CELL = 300;

function cell(text: string, last: boolean): string {
  const max = last ? MAX_LAST_CELL : MAX_CELL;
  const line = text.replace(/\s+/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function formatStatusTable(rows: OperationStatus[]): string {
  if (rows.length === 0) return 'No downgrade operations.\n';
  const cells = rows.map((r) => COLUMNS.map((c, i) => cell(c.value(r), i === COLUMNS.length - 1)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (values: string[]): string =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(COLUMNS.map((c) => c.title)), ...cells.map(line)].join('\n')}\n`;
}

export async function runStatus(options: StatusCliOptions, io: StatusIo): Promise<number> {
  let connection: KubeConnection | undefined;
  try {
    connection = connect(options.kubeconfig);
    let ops;
    try {
      ops = await listOperations(connection.cluster, options.namespace);
    } catch (error) {
      io.stderr(`error: ${describeClusterError(error, connection.server)}\n`);
      return 1;
    }
    const now = io.now?.() ?? new Date();
    const rows = sortForStatus(ops).map((op) => operationStatus(op, now));
    io.stdout(options.output === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : formatStatusTable(rows));
    return 0;
  } catch (error) {
    if (error instanceof ClusterAccessError) {
      io.stderr(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    connection?.close();
  }
}

function parseOutput(value: string): StatusOutput {
  if (!(STATUS_OUTPUTS as readonly string[]).includes(value))
    throw new UsageArgumentError(`must be one of ${STATUS_OUTPUTS.join(', ')}`);
  return value as StatusOutput;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show downgrade operations (in progress first) with their current step')
    .option('--kubeconfig <path>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster)')
    .option('-n, --namespace <ns>', 'only this namespace (default: all namespaces)')
    .option('--output <format>', STATUS_OUTPUTS.join(' | '), parseOutput, 'table' as StatusOutput)
    .addHelpText('after', '\nExit codes: 0 ok, 1 the cluster cannot be read, 2 bad flags.')
    .action(async (options: StatusCliOptions) => {
      const code = await runStatus(options, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
      if (code !== 0) process.exitCode = code;
    });
}
