// Five-field cron schedules as CronJobs accept them (robfig/cron standard parser): numbers,
// `*`, `?`, ranges, steps, lists, month/day names and the @hourly/@daily/... macros.
// Evaluated in UTC, or in spec.timeZone through Intl.

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  min: number;
  max: number;
  names?: string[];
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  { min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { min: 0, max: 7, names: DAYS, nameBase: 0 },
];

export interface CronSchedule {
  matches(date: Date): boolean;
}

function parseValue(text: string, field: FieldSpec): number {
  const byName = field.names?.indexOf(text.toLowerCase()) ?? -1;
  const value = byName >= 0 ? byName + (field.nameBase ?? 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < field.min || value > field.max) {
    throw new Error(`value "${text}" out of range [${field.min}, ${field.max}]`);
  }
  return value;
}

function parseField(text: string, field: FieldSpec): { values: Set<number>; star: boolean } {
  const values = new Set<number>();
  let star = false;
  for (const part of text.split(',')) {
    const [range = '', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`bad step in "${part}"`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') {
      [lo, hi] = [field.min, field.max];
      if (stepText === undefined) star = true;
    } else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      [lo, hi] = [parseValue(a, field), parseValue(b, field)];
      if (lo > hi) throw new Error(`bad range "${range}"`);
    } else {
      lo = parseValue(range, field);
      hi = stepText === undefined ? lo : field.max;
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { values, star };
}

export function parseCron(expression: string, timeZone?: string): CronSchedule {
  let text = expression.trim();
  if (text.startsWith('TZ=') || text.startsWith('CRON_TZ='))
    throw new Error('TZ in the schedule is not supported; use spec.timeZone');
  text = MACROS[text.toLowerCase()] ?? text;
  const parts = text.split(/\s+/);
  if (parts.length !== 5) throw new Error(`expected exactly 5 fields, found ${parts.length}: "${expression}"`);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => parseField(p, FIELDS[i] as FieldSpec)) as [
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
  ];
  if (dow.values.has(7)) dow.values.add(0);
  const fieldsOf = timeZone && timeZone !== 'UTC' && timeZone !== 'Etc/UTC' ? zonedFields(timeZone) : utcFields;
  return {
    matches(date: Date): boolean {
      const f = fieldsOf(date);
      if (!minute.values.has(f.minute) || !hour.values.has(f.hour) || !month.values.has(f.month)) return false;
      // As in cron: when both day fields are restricted, either may match.
      const domOk = dom.values.has(f.day);
      const dowOk = dow.values.has(f.weekday);
      return dom.star || dow.star ? domOk && dowOk : domOk || dowOk;
    },
  };
}

interface Fields {
  minute: number;
  hour: number;
  day: number;
  month: number;
  weekday: number;
}

function utcFields(d: Date): Fields {
  return {
    minute: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    weekday: d.getUTCDay(),
  };
}

function zonedFields(timeZone: string): (d: Date) => Fields {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    minute: 'numeric',
    hour: 'numeric',
    day: 'numeric',
    month: 'numeric',
    weekday: 'short',
  });
  return (d) => {
    const parts = Object.fromEntries(format.formatToParts(d).map((p) => [p.type, p.value]));
    return {
      minute: Number(parts.minute),
      hour: Number(parts.hour),
      day: Number(parts.day),
      month: Number(parts.month),
      weekday: DAYS.indexOf(String(parts.weekday).toLowerCase()),
    };
  };
}

const MINUTE = 60_000;
/** How far back missed schedules are looked for. */
const LOOKBACK_MS = 7 * 24 * 60 * MINUTE;

/** The latest scheduled time t with after < t <= now (minute precision), if any. */
export function lastScheduleBetween(schedule: CronSchedule, afterMs: number, nowMs: number): number | undefined {
  const floor = Math.max(afterMs, nowMs - LOOKBACK_MS);
  for (let t = Math.floor(nowMs / MINUTE) * MINUTE; t > floor; t -= MINUTE) {
    if (schedule.matches(new Date(t))) return t;
  }
  return undefined;
}
