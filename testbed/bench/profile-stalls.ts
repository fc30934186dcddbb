// Finds event-loop stalls in a V8 .cpuprofile (node --cpu-prof): stretches of consecutive non-idle
// samples longer than a threshold, each with where its time went. A request that arrives during
// one waits for it, so these are what an admission p99 under load is made of.
//
//   node dist-testbed/testbed/bench/profile-stalls.js <file.cpuprofile> [min-ms=5] [top=15]
import { readFileSync } from 'node:fs';

import type { CpuProfile, ProfileNode } from './profile-summary.js';

export interface Stall {
  /** ms from the start of the profile. */
  atMs: number;
  ms: number;
  /** Self time by function within the stall, largest first. */
  functions: Array<{ name: string; ms: number }>;
  /** The outermost frame below the event loop that the stall ran under (e.g. a timer, a socket read). */
  roots: Array<{ name: string; ms: number }>;
}

const IDLE = new Set(['(idle)', '(program)']);

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

export function findStalls(profile: CpuProfile, minMs: number): Stall[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const rootOf = (id: number): string => {
    // The frame just below (root) -> the first real function.
    let cur = id;
    const chain: number[] = [];
    while (parent.has(cur)) {
      chain.push(cur);
      cur = parent.get(cur)!;
    }
    const top = chain[chain.length - 1];
    const next = chain.length > 1 ? chain[chain.length - 2] : undefined;
    const pick = next !== undefined && byId.get(top!)?.callFrame.functionName === '' ? next : top;
    return pick === undefined ? '(root)' : label(byId.get(pick)!);
  };
  const stalls: Stall[] = [];
  let t = 0;
  let current: { start: number; ms: number; ids: Array<[number, number]> } | undefined;
  const close = (): void => {
    if (current && current.ms >= minMs) {
      const fn = new Map<string, number>();
      const roots = new Map<string, number>();
      for (const [id, ms] of current.ids) {
        const name = label(byId.get(id)!);
        fn.set(name, (fn.get(name) ?? 0) + ms);
        const root = rootOf(id);
        roots.set(root, (roots.get(root) ?? 0) + ms);
      }
      const sorted = (m: Map<string, number>) =>
        [...m.entries()].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, ms }));
      stalls.push({ atMs: current.start, ms: current.ms, functions: sorted(fn), roots: sorted(roots) });
    }
    current = undefined;
  };
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const name = byId.get(id)?.callFrame.functionName ?? '';
    if (IDLE.has(name)) close();
    else {
      current ??= { start: t, ms: 0, ids: [] };
      current.ms += ms;
      current.ids.push([id, ms]);
    }
    t += ms;
  });
  close();
  return stalls;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, min = '5', top = '15'] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: profile-stalls <file.cpuprofile> [min-ms] [top]\n');
    process.exit(2);
  }
  const stalls = findStalls(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(min));
  const total = stalls.reduce((n, s) => n + s.ms, 0);
  process.stdout.write(`${stalls.length} stalls >= ${min} ms, ${total.toFixed(0)} ms in all\n`);
  for (const s of [...stalls].sort((a, b) => b.ms - a.ms).slice(0, Number(top))) {
    process.stdout.write(`\n${s.ms.toFixed(1)} ms at ${(s.atMs / 1000).toFixed(2)} s\n`);
    for (const r of s.roots.slice(0, 3)) process.stdout.write(`  under ${r.name}: ${r.ms.toFixed(1)} ms\n`);
    for (const f of s.functions.slice(0, 6)) process.stdout.write(`    ${f.ms.toFixed(1)} ms  ${f.name}\n`);
  }
}
