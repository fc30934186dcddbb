// How the decision's warnings are laid out: the drain list spread over a few lines, each kept under
// the length Kubernetes passes through whole, and the plan's lines in order.
import type { DowngradePlan } from './decision.js';
import { formatArgv } from './downgrade-command.js';
import type { HoldRecord } from './hold.js';

export const TOOL = 'airflow-downgrade-guard';

const MAX_WARNING = 240;

/** Every workload the drain stops matters to the reader: spread over a few lines, then 'and N more'. */
const MAX_DRAIN_LINES = 4;

/** 'spec.paused=true, …': what the hold changed. */
export function holdSummary(record: HoldRecord): string {
  return record.changes.map((c) => `${c.path.slice(1).replace(/\//g, '.')}=${JSON.stringify(c.held)}`).join(', ');
}

/**
 * The plan's lines, in the configured order: what the drain stops, where the downgrade runs, the
 * outage. `from` names the running version (or revision), `release` is safe for messages.
 */
export function planWarnings(release: string, plan: DowngradePlan, from: string, target: string): string[] {
  const command = `"${formatArgv(plan.argv)}" (Airflow ${target})`;
  const released = `release the hold so ${target} starts on the matching schema.`;
  if (plan.order === 'drain-first') {
    const drain =
      plan.drain.length > 0
        ? drainLines(
            'Plan (order drain-first): first drain (scale to 0, suspend CronJobs):',
            plan.drain.map((w) => `${w.kind.toLowerCase()}/${w.name} (${w.replicas})`),
          )
        : [
            `Plan (order drain-first): first drain every workload of release ${release} that uses the database (scale to 0, suspend CronJobs).`,
          ];
    return [
      ...drain,
      `Then run ${command} in a short-lived runner pod of ${from}, check alembic_version, and ${released}`,
      outageLine(plan, from, target),
    ];
  }
  const where = plan.execPod
    ? `in pod ${plan.execPod.name} (${plan.execPod.component}, ${from})`
    : `in a running ${from} pod (api-server or webserver first, then scheduler)`;
  const lines = [`Plan (order downgrade-first): run ${command} ${where}, then check alembic_version.`];
  if (plan.drain.length > 0) {
    lines.push(
      ...drainLines(
        'Then drain (scale to 0, suspend CronJobs):',
        plan.drain.map((w) => `${w.kind.toLowerCase()}/${w.name} (${w.replicas})`),
      ),
    );
    lines.push(`Then ${released}`);
  } else {
    lines.push(`Then drain every workload of release ${release} that uses the database and ${released}`);
  }
  lines.push(outageLine(plan, from, target));
  return lines;
}

/** The outage is the drain plus the start of the new pods; drain-first also waits out the downgrade. */
function outageLine(plan: DowngradePlan, from: string, target: string): string {
  const { workloads, pods } = plan.outage;
  const stopped =
    workloads > 0
      ? `${workloads} workload${workloads === 1 ? '' : 's'} (${pods} pod${pods === 1 ? '' : 's'})`
      : 'every database-using pod of the release';
  const verb = workloads > 1 ? 'stop' : 'stops';
  if (plan.order === 'drain-first') {
    return `Estimated outage: ${stopped} ${verb} at the drain, before the downgrade, until the ${target} pods start and are Ready; no pod runs on a schema it does not match.`;
  }
  return `Estimated outage: ${stopped} ${verb} at the drain, after the downgrade and its check, until the ${target} pods start and are Ready; ${from} keeps serving while the downgrade runs.`;
}

function drainLines(first: string, items: string[]): string[] {
  const lines: string[] = [];
  let rest = items;
  while (rest.length > 0) {
    const prefix = lines.length === 0 ? first : 'Drain (continued):';
    if (lines.length === MAX_DRAIN_LINES - 1) {
      lines.push(listLine(prefix, rest, '.'));
      break;
    }
    let taken = 1;
    while (taken < rest.length && `${prefix} ${rest.slice(0, taken + 1).join(', ')},`.length <= MAX_WARNING) taken++;
    lines.push(`${prefix} ${rest.slice(0, taken).join(', ')}${taken === rest.length ? '.' : ','}`);
    rest = rest.slice(taken);
  }
  return lines;
}

/** 'prefix a, b, c and 3 more suffix', kept under the warning length Kubernetes passes through whole. */
function listLine(prefix: string, items: string[], suffix: string): string {
  const shown: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const rest = items.length - i - 1;
    const candidate = [...shown, items[i] as string].join(', ');
    const tail = rest > 0 ? ` and ${rest} more` : '';
    if (`${prefix} ${candidate}${tail}${suffix}`.length > MAX_WARNING && shown.length > 0) {
      return `${prefix} ${shown.join(', ')} and ${items.length - shown.length} more${suffix}`;
    }
    shown.push(items[i] as string);
  }
  return `${prefix} ${shown.join(', ')}${suffix}`;
}
