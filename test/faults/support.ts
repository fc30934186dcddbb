// Shared pieces of the fault suite: one Airflow release under the real guard, a downgrade
// trigger, outcome classification, an exec argv recorder, audit counting and the fault table.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { headForVersion } from '../../src/core/heads.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import type { OperationState } from '../../src/coordinator/operation.js';
import { releaseReady, setImage, waitFor, type E2E, type Guard, type ReleaseSpec } from '../e2e/harness.js';

export const FROM = '3.1.0';
export const TO = '3.0.2';
export const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;

export function releaseSpec(overrides: Partial<ReleaseSpec> = {}): ReleaseSpec {
  return {
    release: 'airflow',
    namespace: 'airflow',
    version: FROM,
    components: ['api-server', 'scheduler', 'dag-processor', 'triggerer'],
    replicas: { scheduler: 2 },
    cronJobs: false,
    ...overrides,
  };
}

/** What a Helm/Argo downgrade does to the workloads: every Airflow image moves to `version`. */
export async function downgradeRelease(e2e: E2E, spec: ReleaseSpec, version = TO): Promise<void> {
  for (const component of spec.components ?? []) {
    if (component === 'statsd') continue;
    const kind = spec.statefulSets?.includes(component) ? 'StatefulSet' : 'Deployment';
    await setImage(e2e, kind, spec.namespace, `${spec.release}-${component}`, version);
  }
}

export type Outcome = 'completed' | 'held safely' | 'cancelled' | 'failed';

export interface FaultRow {
  fault: string;
  outcome: Outcome;
  expected: Outcome | Outcome[];
  phase: string;
  violations: number;
  alembic: string;
  recoverMs: number;
  lostAudit?: number;
  note?: string;
}

const TERMINAL = new Set(['done', 'held', 'cancelled', 'aborted']);

export async function waitTerminal(e2e: E2E, spec: ReleaseSpec, timeoutMs = 60_000): Promise<OperationState> {
  return waitFor(
    'operation terminal',
    () => {
      const op = e2e.operation(spec.namespace, spec.release);
      return op && TERMINAL.has(op.phase) ? op : undefined;
    },
    timeoutMs,
    25,
  );
}

/**
 * completed: done, schema at the target, release running it. held safely: held, schema back at
 * (or never left) the running version and the running pods on it. cancelled: likewise, no downgrade.
 */
export async function classify(
  e2e: E2E,
  spec: ReleaseSpec,
  op: OperationState,
  target = TO,
): Promise<{ outcome: Outcome; violations: number; alembic: string }> {
  const alembic = (await e2e.revision()) ?? '(none)';
  await e2e.sim.runtime.sweep();
  const violations = e2e.sim.runtime.violations.list().length;
  let outcome: Outcome = 'failed';
  if (op.phase === 'done' && alembic === head(target)) {
    const ready = await waitFor(
      `release on ${target}`,
      () => releaseReady(e2e.sim, { ...spec, version: target }),
      30_000,
      50,
    ).catch(() => false);
    if (ready) outcome = 'completed';
  } else if ((op.phase === 'held' || op.phase === 'cancelled') && alembic === head(spec.version)) {
    const ready = await waitFor(
      `release still on ${spec.version}`,
      () => releaseReady(e2e.sim, spec),
      30_000,
      50,
    ).catch(() => false);
    if (ready) outcome = op.phase === 'held' ? 'held safely' : 'cancelled';
  }
  return {
    outcome,
    violations,
    alembic:
      alembic === head(target)
        ? `${alembic} (${target})`
        : alembic === head(spec.version)
          ? `${alembic} (${spec.version})`
          : alembic,
  };
}

/** Kills the guard with SIGKILL and starts a replacement under a new identity. */
export async function killAndRestart(
  e2e: E2E,
  guard: Guard,
  extraArgs: string[] = [],
): Promise<{ guard: Guard; killedAt: number }> {
  await guard.stop('SIGKILL');
  const killedAt = Date.now();
  const next = await e2e.startGuard(`${guard.identity}-r`, extraArgs);
  await pointWebhookAt(e2e, next.port);
  return { guard: next, killedAt };
}

/** The Service would route to the new replica; the harness registered the first guard's port. */
export async function pointWebhookAt(e2e: E2E, port: number): Promise<void> {
  const configs = await e2e.admin.list('MutatingWebhookConfiguration', undefined);
  for (const config of configs.items as Array<{
    metadata: { name: string };
    webhooks?: Array<{ clientConfig?: { url?: string } }>;
  }>) {
    const ops = (config.webhooks ?? []).flatMap((hook, i) =>
      hook.clientConfig?.url?.includes('127.0.0.1')
        ? [
            {
              op: 'replace' as const,
              path: `/webhooks/${i}/clientConfig/url`,
              value: `https://127.0.0.1:${port}/mutate`,
            },
          ]
        : [],
    );
    if (ops.length) await e2e.admin.patch('MutatingWebhookConfiguration', undefined, config.metadata.name, ops);
  }
}

// ---- exec argv recorder ----------------------------------------------------------------------

export interface ExecCall {
  pod: string;
  command: string;
}

/**
 * Records every command exec'd into a simulated Airflow container. The runtime consults exec
 * fault rules with the pod name and the argv joined by spaces; this rule's patterns record
 * both and never match, so it changes nothing.
 */
export function recordExecs(e2e: E2E): ExecCall[] {
  const calls: ExecCall[] = [];
  let pod = '';
  class PodProbe extends RegExp {
    override test(value: string): boolean {
      pod = value;
      return true;
    }
  }
  class CommandProbe extends RegExp {
    override test(value: string): boolean {
      calls.push({ pod, command: value });
      return false;
    }
  }
  e2e.sim.runtime.faults.add({
    pod: new PodProbe('.*'),
    command: new CommandProbe('.*'),
    fault: { kind: 'exec-fail' },
  });
  return calls;
}

export const ALLOWED_COMMANDS = [
  `airflow db downgrade --to-revision ${head(TO)} --yes`,
  `airflow db migrate --to-revision ${head(FROM)}`,
];

// ---- audit -------------------------------------------------------------------------------------

/** Records the guard logged as appended to the audit log ('audit' lines), by kind. */
export function auditAppended(guards: Guard[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const g of guards) {
    for (const line of g.logs) {
      if (!line.includes('"msg":"audit"')) continue;
      try {
        const rec = JSON.parse(line) as { kind?: string };
        counts[rec.kind ?? '?'] = (counts[rec.kind ?? '?'] ?? 0) + 1;
      } catch {
        // not a JSON log line
      }
    }
  }
  return counts;
}

export async function auditStored(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client
      .query<{ kind: string; n: string }>(
        'SELECT kind, count(*) AS n FROM airflow_downgrade_guard.audit_records GROUP BY kind',
      )
      .catch(async () => {
        const schemas = await client.query<{ nspname: string }>(
          "SELECT table_schema AS nspname FROM information_schema.tables WHERE table_name = 'audit_records'",
        );
        const schema = schemas.rows[0]?.nspname;
        if (!schema) return { rows: [] as Array<{ kind: string; n: string }> };
        return client.query<{ kind: string; n: string }>(
          `SELECT kind, count(*) AS n FROM "${schema}".audit_records GROUP BY kind`,
        );
      });
    return Object.fromEntries(res.rows.map((r) => [r.kind, Number(r.n)]));
  } finally {
    await client.end();
  }
}

export function lostRecords(appended: Record<string, number>, stored: Record<string, number>): number {
  let lost = 0;
  for (const [kind, n] of Object.entries(appended)) lost += Math.max(0, n - (stored[kind] ?? 0));
  return lost;
}

// ---- the table -------------------------------------------------------------------------------

const RESULTS = path.resolve(import.meta.dirname, '.results');

export function saveRows(file: string, rows: FaultRow[]): void {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(path.join(RESULTS, `${file}.rows.json`), JSON.stringify(rows, null, 2));
}

export function saveCounts(file: string, counts: Record<string, number | string>): void {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(path.join(RESULTS, `${file}.counts.json`), JSON.stringify(counts, null, 2));
}

/** Rows and counts of this run (files written in the last hour), as one markdown table. */
export function renderReport(): string {
  mkdirSync(RESULTS, { recursive: true });
  const fresh = readdirSync(RESULTS)
    .map((f) => path.join(RESULTS, f))
    .filter((f) => Date.now() - statSync(f).mtimeMs < 3_600_000)
    .sort();
  // The fast rows (faults.test.ts) are also in the full table: the full run's row wins.
  const byFault = new Map<string, FaultRow>();
  for (const f of fresh.filter((name) => name.endsWith('.rows.json')))
    for (const r of JSON.parse(readFileSync(f, 'utf8')) as FaultRow[]) byFault.set(r.fault, r);
  const rows = [...byFault.values()];
  const lines = [
    '| fault | outcome | expected | violations | alembic_version | recover (ms) | lost audit | note |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.outcome} | ${[r.expected].flat().join(' / ')} | ${r.violations} | ${r.alembic} | ${r.recoverMs} | ${r.lostAudit ?? '-'} | ${r.note ?? ''} |`,
    ),
  ];
  const counts = fresh
    .filter((f) => f.endsWith('.counts.json'))
    .map((f) => [path.basename(f, '.counts.json'), JSON.parse(readFileSync(f, 'utf8'))] as const);
  const fuzz = counts.map(
    ([name, c]) =>
      `- ${name}: ${Object.entries(c as Record<string, unknown>)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ')}`,
  );
  const totalViolations = rows.reduce((n, r) => n + r.violations, 0);
  const lost = rows.reduce((n, r) => n + (r.lostAudit ?? 0), 0);
  const failedRows = rows.filter((r) => ![r.expected].flat().includes(r.outcome)).length;
  const text = [
    '# Fault table',
    '',
    ...lines,
    '',
    `${rows.length} rows; ${failedRows} unexpected outcomes; ${totalViolations} violations; ${lost} lost audit records`,
    '',
    ...(fuzz.length ? ['# Fuzz and hostile-input counts', '', ...fuzz, ''] : []),
  ].join('\n');
  writeFileSync(path.join(RESULTS, 'fault-table.md'), text);
  return text;
}

export function printReport(): void {
  process.stdout.write(`\n${renderReport()}\n(written to ${path.join(RESULTS, 'fault-table.md')})\n`);
}
