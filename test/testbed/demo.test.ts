// `npm run demo` as a new user reads it (issue 16): every held workload's warning shown (it once
// printed only the first 8 distinct warnings, so the StatefulSet, CronJob and Job holds never showed),
// every pod named, one time base for the progress lines and the operation's timeline.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../testbed/start.js';

const DEMO = path.join(REPO_ROOT, 'dist-testbed/testbed/demo/main.js');

function runDemo(): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DEMO], { timeout: 170_000 }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      // Colours off: the demo prints bold/dim escapes.
      resolve({ code: typeof code === 'number' ? code : 1, out: `${stdout}${stderr}`.replace(/\x1b\[[0-9;]*m/g, '') });
    });
  });
}

/** Seconds since the demo started, as a line starts with it ("  6.32s  …"). */
function secondsOf(line: string): number | undefined {
  const m = /^\s+(\d+\.\d\d)s\s/.exec(line);
  return m ? Number(m[1]) : undefined;
}

describe('npm run demo', () => {
  it('shows every held workload, names every pod, and keeps one time base', { timeout: 180_000 }, async () => {
    const { code, out } = await runDemo();
    expect(code, out).toBe(0);
    const lines = out.split('\n');

    for (const workload of [
      'deployment/airflow-api-server',
      'deployment/airflow-scheduler',
      'deployment/airflow-dag-processor',
      'statefulset/airflow-triggerer',
      'statefulset/airflow-worker',
      'cronjob/airflow-database-cleanup',
      'job/airflow-run-airflow-migrations',
    ])
      expect(
        lines.some((l) => l.includes('Warning:') && l.includes(`${workload} is held`)),
        `${workload} held`,
      ).toBe(true);

    // "pods: 3.1.0 Running: name, name; v0.28.0 Running: name" — every group lists its pods by name.
    const podLines = lines.filter((l) => /^\s+\d+\.\d\ds\s+pods: /.test(l));
    expect(podLines.length).toBeGreaterThan(0);
    for (const line of podLines) {
      for (const group of line.replace(/^.*?pods: /, '').split('; ')) {
        expect(group, line).toMatch(/^\S+ [A-Z][a-z]+: [a-z0-9-]+(, [a-z0-9-]+)*$/);
      }
    }

    // Progress and the operation's timeline count from the same start, in order: the operation
    // opened after Airflow 3.1.0 ran, and was done before the demo said so.
    const running = lines.find((l) => l.includes('Airflow 3.1.0 running'));
    const done = lines.find((l) => / operation dg-[0-9a-f]+: done$/.test(l));
    const timelineAt = lines.findIndex((l) => l.startsWith('Timeline of the operation'));
    const timeline = lines.slice(timelineAt + 1).filter((l) => secondsOf(l) !== undefined);
    expect(timeline.map((l) => l.trim().split(/\s+/)[1])).toEqual([
      'open',
      'confirm',
      'quiesce',
      'downgrade',
      'verify',
      'drain',
      'release',
    ]);
    const opened = secondsOf(timeline[0]!)!;
    const released = secondsOf(timeline.at(-1)!)!;
    expect(opened).toBeGreaterThanOrEqual(secondsOf(running!)!);
    expect(released).toBeLessThanOrEqual(secondsOf(done!)!);
    expect(out).toContain('violations (an older pod against a newer schema, or the reverse): 0');
  });
});
