// The plan report as text for people and as JSON for pipelines.
import { ANNOTATIONS } from '../core/config.js';
import { formatArgv } from '../core/downgrade-command.js';
import type { VersionPoint } from '../core/decide.js';
import { PLAN_EXIT, planExitCode, type ObjectResult, type PlanReport, type ReleasePlan } from './evaluate.js';

export const PLAN_OUTPUTS = ['text', 'json'] as const;
export type PlanOutput = (typeof PLAN_OUTPUTS)[number];

function point(p: VersionPoint | undefined): string {
  if (!p) return '?';
  return p.version ?? `revision ${p.revision ?? '?'}`;
}

function heads(from: VersionPoint | undefined, to: VersionPoint | undefined): string {
  return from?.revision || to?.revision
    ? ` (schema ${from?.revision ?? 'unknown'} -> ${to?.revision ?? 'unknown'})`
    : '';
}

const SOURCE_TEXT: Record<VersionPoint['source'], string> = {
  object: 'the manifest',
  oldObject: 'the stored object',
  runningVersion: 'the running version',
  dbRevision: 'the database revision',
  operation: 'the open operation',
};

function headline(r: ReleasePlan): string {
  const name = `${r.namespace}/${r.release}`;
  switch (r.outcome) {
    case 'downgrade':
      return `${name}: DOWNGRADE ${point(r.from)} -> ${point(r.to)}${heads(r.from, r.to)}, operation ${r.operationId ?? '?'}`;
    case 'denied':
      return `${name}: DENIED — the guard would refuse ${r.objects.filter((o) => !o.allowed).length} object(s)`;
    case 'undetermined': {
      const unknown = r.objects.filter((o) => o.decision === 'unknown-version');
      const what = unknown.some((o) => o.hold !== undefined)
        ? 'it would hold them until it has resolved their version from the image (registry labels, else a probe pod); give --registry-config to resolve it here'
        : 'it would admit them without a downgrade check';
      return `${name}: UNDETERMINED — the guard cannot tell the Airflow version of ${unknown.length} object(s); ${what}`;
    }
    case 'no-downgrade': {
      const kinds = [...new Set(r.objects.map((o) => o.decision))].join(', ');
      return `${name}: no downgrade (${kinds}${r.from || r.to ? `; ${point(r.from)} -> ${point(r.to)}` : ''})`;
    }
  }
}

function objectLine(o: ObjectResult): string {
  const versions = o.from || o.to ? `  ${point(o.from)} -> ${point(o.to)}` : '';
  return `    ${o.operation.padEnd(6)} ${`${o.kind.toLowerCase()}/${o.name}`.padEnd(44)} ${o.decision.padEnd(15)}${versions}`;
}

function releaseText(r: ReleasePlan): string[] {
  const lines = [headline(r)];
  const label = (name: string, value: string): string => `  ${`${name}:`.padEnd(12)}${value}`;
  // One item per line, aligned under the first.
  const list = (name: string, items: string[]): string[] =>
    items.map((item, i) => (i === 0 ? label(name, item) : `${' '.repeat(14)}${item}`));
  if (r.outcome === 'downgrade' && r.plan) {
    lines.push(label('current', `${point(r.from)} from ${SOURCE_TEXT[r.from?.source ?? 'runningVersion']}`));
    lines.push(...list('hold', r.held.length > 0 ? r.held : ['(none)']));
    lines.push(label('command', formatArgv(r.plan.argv)));
    const drainFirst = r.plan.order === 'drain-first';
    lines.push(label('order', r.plan.order));
    const where = drainFirst
      ? `a short-lived runner pod of ${point(r.from)}, after the drain`
      : r.plan.execPod
        ? `pod ${r.plan.execPod.name} (${r.plan.execPod.component}, ${point(r.from)})`
        : `a running ${point(r.from)} pod (api-server or webserver first, then scheduler) — none known`;
    lines.push(label('run in', where));
    const drain = r.plan.drain.map((w) => `${w.kind.toLowerCase()}/${w.name} (${w.replicas})`);
    lines.push(
      ...list('drain', [
        ...(drain.length > 0 ? drain : ['every workload of the release that uses the database']),
        "and the release's CronJobs (suspended)",
      ]),
    );
    const { workloads, pods } = r.plan.outage;
    const during = drainFirst ? 'no pod runs during the downgrade' : `${point(r.from)} serves during the downgrade`;
    lines.push(
      label(
        'outage',
        `${workloads > 0 ? `${workloads} workload(s), ${pods} pod(s)` : 'the release'} down from the drain until the ${point(r.to)} pods are Ready; ${during}`,
      ),
    );
  }
  for (const o of r.objects) if (o.denial) lines.push(label('denied', o.denial));
  if (r.warnings.length > 0) {
    const first = r.objects.find((o) => o.hold);
    lines.push(
      `  warnings (as kubectl/Helm would print them${first ? `, for ${first.kind.toLowerCase()}/${first.name}` : ''}):`,
    );
    for (const w of r.warnings) lines.push(`    ${w}`);
  }
  lines.push('  objects:');
  for (const o of r.objects) lines.push(objectLine(o));
  return lines;
}

function summary(report: PlanReport): string {
  const code = planExitCode(report);
  const count = (outcome: ReleasePlan['outcome']): number =>
    report.releases.filter((r) => r.outcome === outcome).length;
  if (code === PLAN_EXIT.denied)
    return `Result: the guard would deny changes to ${count('denied')} release(s) (exit 1).`;
  if (code === PLAN_EXIT.undetermined) {
    return `Result: the Airflow version is undetermined for ${count('undetermined')} release(s) (exit 4): set annotation ${ANNOTATIONS.airflowVersion} on the workloads or use image tags that name the version.`;
  }
  if (code === PLAN_EXIT.downgrade)
    return `Result: a downgrade would be coordinated for ${count('downgrade')} release(s) (exit 3).`;
  return `Result: no downgrade (exit 0).`;
}

export function formatPlanText(report: PlanReport): string {
  const workloads = report.releases.reduce((n, r) => n + r.objects.length, 0);
  const lines = [
    `Plan for ${report.documents} document(s), ${workloads} Airflow workload(s), against ${report.source}.`,
    '',
  ];
  for (const r of report.releases) lines.push(...releaseText(r), '');
  if (report.releases.length === 0) lines.push('No Airflow workloads in the manifests.', '');
  if (report.skipped.length > 0) {
    lines.push(`Not checked (${report.skipped.length}):`);
    for (const s of report.skipped) lines.push(`  document ${s.document}: ${s.object}: ${s.reason}`);
    lines.push('');
  }
  lines.push(summary(report));
  return `${lines.join('\n')}\n`;
}

export function formatPlanJson(report: PlanReport): string {
  return `${JSON.stringify({ ...report, exitCode: planExitCode(report) }, null, 2)}\n`;
}
