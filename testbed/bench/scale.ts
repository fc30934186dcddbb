// Section 4: memory cost of watching many releases, one fresh process per size so RSS is comparable.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ScaleSample } from './scale-child.js';

export interface ScaleReport {
  samples: ScaleSample[];
  /** Heap growth per release between the empty cluster and each size. */
  perReleaseHeapBytes: Array<{ releases: number; bytes: number; rssBytes: number }>;
}

async function measureIn(releases: number): Promise<ScaleSample> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', path.join(import.meta.dirname, 'scale-child.js'), String(releases)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`scale measurement of ${releases} releases failed (${code}): ${err.trim()}`);
  return JSON.parse(out.trim().split('\n').pop()!) as ScaleSample;
}

export async function runScaleBench(sizes: number[], log: (line: string) => void): Promise<ScaleReport> {
  const samples: ScaleSample[] = [];
  for (const n of [0, ...sizes]) {
    const s = await measureIn(n);
    samples.push(s);
    log(`  ${n} releases: heap +${(s.heapDeltaBytes / 1024).toFixed(0)} KB, synced in ${s.syncMs.toFixed(0)} ms`);
  }
  const empty = samples[0]!;
  const perReleaseHeapBytes = samples.slice(1).map((s) => ({
    releases: s.releases,
    bytes: (s.heapDeltaBytes - empty.heapDeltaBytes) / s.releases,
    rssBytes: (s.rssDeltaBytes - empty.rssDeltaBytes) / s.releases,
  }));
  return { samples, perReleaseHeapBytes };
}
