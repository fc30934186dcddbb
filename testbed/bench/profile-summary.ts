// Summarises a V8 .cpuprofile (node --cpu-prof): top functions by self time, and self time per
// package / source area, so the benchmark note can say where a request's time goes.
//
//   node dist-testbed/testbed/bench/profile-summary.js <file.cpuprofile> [top]
import { readFileSync } from 'node:fs';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The parts of a V8 .cpuprofile (node --cpu-prof) the profile tools read. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime?: number;
}

export interface ProfileSummary {
  totalMs: number;
  functions: Array<{ name: string; where: string; ms: number; share: number }>;
  areas: Array<{ area: string; ms: number; share: number }>;
}

/** Groups a script URL into node internals, a dependency, or a source area of this project. */
function areaOf(url: string): string {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep) return dep[1]!;
  const own = /dist\/(src\/[^/]+|bench)\//.exec(url);
  if (own) return own[1]!;
  return url.split('/').slice(-2).join('/');
}

export function summariseProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
  });
  const functions = new Map<string, { name: string; where: string; ms: number }>();
  const areas = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      areas.set(name, (areas.get(name) ?? 0) + ms);
      continue;
    }
    const where = url
      ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${lineNumber + 1}`
      : '';
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, ms: 0 };
    entry.ms += ms;
    functions.set(key, entry);
    const area = areaOf(url);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const busy = total - (areas.get('(idle)') ?? 0);
  return {
    totalMs: total,
    functions: [...functions.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((f) => ({ ...f, share: f.ms / busy })),
    areas: [...areas.entries()]
      .filter(([a]) => a !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([area, ms]) => ({ area, ms, share: ms / busy })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, topArg] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: profile-summary <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(topArg ?? 25));
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`.padStart(6);
  process.stdout.write(`busy (non-idle) share of ${summary.totalMs.toFixed(0)} ms sampled\n\nby area:\n`);
  for (const a of summary.areas.slice(0, 20))
    process.stdout.write(`${pct(a.share)}  ${a.ms.toFixed(0).padStart(7)} ms  ${a.area}\n`);
  process.stdout.write('\ntop functions (self time):\n');
  for (const f of summary.functions)
    process.stdout.write(`${pct(f.share)}  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}\n`);
}
