import { describe, expect, it } from 'vitest';
import { parseDuration, parseReleaseRef, runWait, type WaitCliOptions } from '../../src/cli/commands/wait.js';
import { ClusterAccessError } from '../../src/plan/kube.js';
import type { ReleaseSnapshot } from '../../src/wait/verdict.js';
import { newOperation, type OperationState } from '../../src/coordinator/operation.js';

const OPTIONS: WaitCliOptions = {
  release: { namespace: 'airflow', name: 'airflow' },
  timeout: 10_000,
  interval: 1_000,
};

function op(phase: OperationState['phase'], extra: Partial<OperationState> = {}): OperationState {
  return {
    ...newOperation({
      id: 'dg-00112233aabbccdd',
      namespace: 'airflow',
      release: 'airflow',
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: 'cc92b33c6709',
      toRevision: '29ce7909c52b',
      openedBy: 'admin',
      now: new Date(),
    }),
    phase,
    ...extra,
  };
}

const DONE: ReleaseSnapshot = {
  namespace: 'airflow',
  release: 'airflow',
  workloads: [
    { kind: 'CronJob', name: 'airflow-cleanup', object: { metadata: { name: 'airflow-cleanup' }, spec: {} } },
  ],
};

/** Runs the wait over a scripted sequence of snapshots (or read failures) on a fake clock. */
async function wait(sequence: Array<ReleaseSnapshot | Error>, options: Partial<WaitCliOptions> = {}) {
  let clock = 0;
  let reads = 0;
  let stdout = '';
  let stderr = '';
  const code = await runWait(
    { ...OPTIONS, ...options },
    {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
      snapshot: async () => {
        const next = sequence[Math.min(reads++, sequence.length - 1)]!;
        if (next instanceof Error) throw next;
        return next;
      },
    },
  );
  return { code, stdout, stderr, reads };
}

describe('wait', () => {
  it('exits 0 at once when the release is done', async () => {
    const result = await wait([DONE]);
    expect(result).toMatchObject({ code: 0, stderr: '', reads: 1 });
    expect(result.stdout).toBe('release airflow/airflow: 1 workloads rolled out, none held (after 0s)\n');
  });

  it('waits through an operation, printing each change of progress once on stderr', async () => {
    const result = await wait([
      { ...DONE, operation: op('confirm') },
      { ...DONE, operation: op('confirm') },
      { ...DONE, operation: op('drain') },
      { ...DONE, operation: op('done') },
    ]);
    expect(result.code).toBe(0);
    expect(result.reads).toBe(4);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^\[0s\] waiting for airflow\/airflow: operation dg-00112233aabbccdd \(3\.1\.0 -> 3\.0\.2\) is at confirm: /,
    );
    expect(lines[1]).toMatch(
      /^\[2s\] waiting for airflow\/airflow: operation dg-00112233aabbccdd \(3\.1\.0 -> 3\.0\.2\) is at drain: /,
    );
    expect(result.stdout).toMatch(/last operation dg-00112233aabbccdd \(3\.1\.0 -> 3\.0\.2\) done \(after 3s\)\n$/);
  });

  it('exits 3 with the reason when the operation is held', async () => {
    const result = await wait([
      { ...DONE, operation: op('downgrade') },
      { ...DONE, operation: op('held', { heldFrom: 'downgrade', heldReason: 'deadlock detected' }) },
    ]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe(
      'airflow/airflow is held: operation dg-00112233aabbccdd (3.1.0 -> 3.0.2) is held at downgrade: deadlock detected\n',
    );
  });

  it('exits 124 when the timeout passes, with what it was waiting for', async () => {
    const result = await wait([{ ...DONE, operation: op('downgrade') }], { timeout: 5_000 });
    expect(result.code).toBe(124);
    expect(result.reads).toBe(6);
    expect(result.stdout).toMatch(
      /^airflow\/airflow is not done after 5s: operation dg-00112233aabbccdd \(3\.1\.0 -> 3\.0\.2\) is at downgrade: /,
    );
  });

  it('exits 1 when the cluster cannot be read at all', async () => {
    const result = await wait([
      new ClusterAccessError('cannot reach the Kubernetes API at https://127.0.0.1:1: connect ECONNREFUSED'),
    ]);
    expect(result).toMatchObject({ code: 1, stdout: '', reads: 1 });
    expect(result.stderr).toBe('error: cannot reach the Kubernetes API at https://127.0.0.1:1: connect ECONNREFUSED\n');
  });

  it('rides out a short outage after the first read, and gives up after three failed reads in a row', async () => {
    const down = new ClusterAccessError('cannot reach the Kubernetes API at https://x: ECONNRESET');
    const recovered = await wait([{ ...DONE, operation: op('drain') }, down, down, DONE]);
    expect(recovered.code).toBe(0);
    expect(recovered.stderr).toContain('ECONNRESET; trying again');
    const lost = await wait([{ ...DONE, operation: op('drain') }, down, down, down, DONE]);
    expect(lost.code).toBe(1);
    expect(lost.reads).toBe(4);
  });

  it('parses durations and release references, refusing anything else', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5m')).toBe(90_000);
    for (const bad of ['', '10', '5x', 'm', '0s', '-1s', '1s2'])
      expect(() => parseDuration(bad), bad).toThrow(/is not a duration/);
    expect(parseReleaseRef('airflow-prod/airflow')).toEqual({ namespace: 'airflow-prod', name: 'airflow' });
    for (const bad of ['airflow', 'a/b/c', '/b', 'A/b', 'a/'])
      expect(() => parseReleaseRef(bad), bad).toThrow(/is not NAMESPACE\/NAME/);
  });
});
