// Renders audit records for people (table, per-operation timeline) and tools (JSON lines).
import type { AdmissionRecord, AuditRecord, OperationStepRecord } from './records.js';

export const OUTPUT_FORMATS = ['table', 'timeline', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)}s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  if (minutes < 60) return `${minutes}m${String(rest).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

function place(record: { namespace: string; release: string }): string {
  return `${record.namespace || '-'}/${record.release || '-'}`;
}

function objectOf(record: AuditRecord): string {
  switch (record.kind) {
    case 'admission':
      return `${record.objectKind}/${record.objectName || '-'}`;
    case 'operation-step':
      return record.execPod ? `pod/${record.execPod}` : '-';
    case 'operator-action':
      return record.operationId ? `operation/${record.operationId}` : '-';
  }
}

function whatOf(record: AuditRecord): string {
  switch (record.kind) {
    case 'admission':
      return record.dryRun ? `${record.decision} (dry-run)` : record.decision;
    case 'operation-step':
      return `${record.step} ${record.event}`;
    case 'operator-action':
      return record.action;
  }
}

function outcomeOf(record: AuditRecord): string {
  if (record.kind === 'admission') return '-';
  return record.outcome ?? '-';
}

function userOf(record: AuditRecord): string {
  return (record.kind === 'operation-step' ? record.actor : record.user) || '-';
}

function timingOf(record: AuditRecord): string {
  if (record.kind === 'admission') return formatDuration(record.latencyMs);
  if (record.kind === 'operation-step' && record.durationMs !== undefined) return formatDuration(record.durationMs);
  return '-';
}

const TABLE_HEADER = [
  'TIME',
  'KIND',
  'NAMESPACE/RELEASE',
  'OBJECT',
  'DECISION/STEP',
  'OUTCOME',
  'USER',
  'OPERATION',
  'LATENCY/DURATION',
];

export function formatTable(records: readonly AuditRecord[]): string {
  if (records.length === 0) return 'no audit records match\n';
  const rows = records.map((r) => [
    r.at,
    r.kind,
    place(r),
    objectOf(r),
    whatOf(r),
    outcomeOf(r),
    userOf(r),
    r.operationId ?? '-',
    timingOf(r),
  ]);
  const widths = TABLE_HEADER.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[TABLE_HEADER, ...rows].map(line).join('\n')}\n`;
}

export function formatJsonLines(records: readonly AuditRecord[]): string {
  return records.map((r) => `${JSON.stringify(r)}\n`).join('');
}

function offset(at: string, start: number): string {
  const ms = Math.max(0, Date.parse(at) - start);
  return (ms === 0 ? '+0s' : `+${formatDuration(ms)}`).padStart(8);
}

function admissionLine(record: AdmissionRecord, role: string): string {
  const versions =
    record.fromVersion || record.toVersion ? ` ${record.fromVersion ?? '?'} → ${record.toVersion ?? '?'}` : '';
  const dry = record.dryRun ? ' (dry-run)' : '';
  return `admission ${record.decision}${dry}: ${record.operation} ${record.objectKind}/${record.objectName}${versions} by ${record.user || '-'} [${role}]`;
}

function commandText(argv: readonly string[] | undefined): string {
  return argv && argv.length > 0 ? ` \`${argv.join(' ')}\`` : '';
}

function stepLine(start: OperationStepRecord | undefined, end: OperationStepRecord | undefined): string {
  const step = (end ?? start) as OperationStepRecord;
  const parts = [`step ${step.step}`];
  if (!end) parts.push('started, no end recorded');
  else {
    parts.push(end.outcome ?? 'ended');
    if (end.durationMs !== undefined) parts.push(formatDuration(end.durationMs));
  }
  const pod = end?.execPod ?? start?.execPod;
  if (pod) parts.push(`in pod/${pod}`);
  const command = commandText(end?.command ?? start?.command);
  if (end?.exitCode !== undefined) parts.push(`exit ${end.exitCode}`);
  if (end?.error) parts.push(`error: ${end.error}`);
  if (end?.detail) parts.push(`— ${end.detail}`);
  return `${parts.join('  ')}${command}  (${step.actor})`;
}

interface TimelineEntry {
  at: string;
  text: string;
}

function operationEntries(records: readonly AuditRecord[]): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  // Per step name, the starts still waiting for their end, each with its timeline entry.
  const openStarts = new Map<string, Array<{ start: OperationStepRecord; entry: TimelineEntry }>>();
  let opened = false;
  for (const record of records) {
    if (record.kind === 'admission') {
      const opens: boolean = !opened && record.decision === 'downgrade';
      opened ||= opens;
      entries.push({ at: record.at, text: admissionLine(record, opens ? 'opened' : 'joined') });
    } else if (record.kind === 'operator-action') {
      const reason = record.reason ? `: ${record.reason}` : '';
      const error = record.error ? ` (${record.error})` : '';
      entries.push({
        at: record.at,
        text: `operator ${record.action} by ${record.user} ${record.outcome}${error}${reason}`,
      });
    } else if (record.event === 'start') {
      const entry = { at: record.at, text: stepLine(record, undefined) };
      entries.push(entry);
      openStarts.set(record.step, [...(openStarts.get(record.step) ?? []), { start: record, entry }]);
    } else {
      const open = openStarts.get(record.step)?.shift();
      if (open) open.entry.text = stepLine(open.start, record);
      else entries.push({ at: record.at, text: stepLine(undefined, record) });
    }
  }
  return entries;
}

/** Where the operation stands by its records: the step still running, else the last step's outcome. */
function operationState(records: readonly AuditRecord[]): string {
  const running = new Map<string, number>();
  let last: OperationStepRecord | undefined;
  for (const r of records) {
    if (r.kind !== 'operation-step') continue;
    running.set(r.step, (running.get(r.step) ?? 0) + (r.event === 'start' ? 1 : -1));
    if (r.event === 'end') last = r;
  }
  const open = [...running].filter(([, n]) => n > 0).map(([step]) => step);
  if (open.length > 0) return `step ${open.join(', ')} running or interrupted`;
  return last ? `last step ${last.step} ${last.outcome ?? 'ended'}` : 'no step recorded';
}

function operationHeader(id: string, records: readonly AuditRecord[]): string {
  const first = records[0] as AuditRecord;
  const admission = records.find((r): r is AdmissionRecord => r.kind === 'admission' && !!r.fromVersion);
  const versions = admission ? `  ${admission.fromVersion} → ${admission.toVersion ?? '?'}` : '';
  return `operation ${id}  ${place(first)}${versions}  since ${first.at}: ${operationState(records)}`;
}

/** Groups records per operation (in order of first appearance), each with its steps paired start→end. */
export function formatTimeline(records: readonly AuditRecord[]): string {
  if (records.length === 0) return 'no audit records match\n';
  const groups = new Map<string, AuditRecord[]>();
  const loose: AuditRecord[] = [];
  for (const record of records) {
    if (!record.operationId) loose.push(record);
    else {
      const group = groups.get(record.operationId);
      if (group) group.push(record);
      else groups.set(record.operationId, [record]);
    }
  }
  const blocks: string[] = [];
  for (const [id, group] of groups) {
    const start = Date.parse((group[0] as AuditRecord).at);
    const lines = operationEntries(group).map((e) => `  ${e.at} ${offset(e.at, start)}  ${e.text}`);
    blocks.push([operationHeader(id, group), ...lines].join('\n'));
  }
  if (loose.length > 0) {
    const lines = loose.map((r) =>
      r.kind === 'admission'
        ? `  ${r.at}  ${admissionLine(r, place(r))}`
        : `  ${r.at}  ${r.kind} ${whatOf(r)} ${place(r)}`,
    );
    blocks.push([`not part of an operation (${loose.length})`, ...lines].join('\n'));
  }
  return `${blocks.join('\n\n')}\n`;
}

export function formatRecords(records: readonly AuditRecord[], format: OutputFormat): string {
  switch (format) {
    case 'table':
      return formatTable(records);
    case 'timeline':
      return formatTimeline(records);
    case 'json':
      return formatJsonLines(records);
  }
}
