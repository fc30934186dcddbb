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
 * The plan's lines: where the downgrade runs, what the drain stops, the outage. `from` names the
 * running version (or revision), `release` is safe for messages.
 */
export function planWarnings(release: string, plan: DowngradePlan, from: string, target: string): string[] {
  const where = plan.execPod
    ? `in pod ${plan.execPod.name} (${plan.execPod.component}, ${from})`
    : `in a running ${from} pod (api-server or webserver first, then scheduler)`;
  const lines = [`Plan: run "${formatArgv(plan.argv)}" (Airflow ${target}) ${where}, then check alembic_version.`];
  if (plan.drain.length > 0) {
    lines.push(...drainLines(plan.drain.map((w) => `${w.kind.toLowerCase()}/${w.name} (${w.replicas})`)));
    lines.push(`Then release the hold so ${target} starts on the matching schema.`);
  } else {
    lines.push(`Then drain every workload of release ${release} that uses the database and release the hold so ${target} starts on the matching schema.`);
  }
  lines.push(outageLine(plan, from, target));
  return lines;
}

/** The outage is the drain plus the start of the new pods; the downgrade itself runs while the current version serves. */
function outageLine(plan: DowngradePlan, from: string, target: string): string {
  const { workloads, pods } = plan.outage;
  const stopped = workloads > 0
    ? `${workloads} workload${workloads === 1 ? '' : 's'} (${pods} pod${pods === 1 ? '' : 's'})`
    : 'every database-using pod of the release';
  return `Estimated outage: ${stopped} ${workloads > 1 ? 'stop' : 'stops'} at the drain, after the downgrade and its check, until the ${target} pods start and are Ready; ${from} keeps serving while the downgrade runs.`;
}

function drainLines(items: string[]): string[] {
  const lines: string[] = [];
  let rest = items;
  while (rest.length > 0) {
    const prefix = lines.length === 0 ? 'Then drain (scale to 0, suspend CronJobs):' : 'Drain (continued):';
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
