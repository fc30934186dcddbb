import { describe, expect, it } from 'vitest';
import { createViolationRecorder } from '../../../../testbed/sim/airflow/violations.js';

const ref = {
  namespace: 'airflow',
  pod: 'airflow-api-server-1',
  container: 'api-server',
  imageVersion: '3.1.0',
  imageHead: 'cc92b33c6709',
};

describe('violation recorder', () => {
  it('records one violation per container instance and revision', () => {
    const recorder = createViolationRecorder();
    const at = new Date('2025-01-01T00:00:00Z');
    recorder.observe('i1', ref, { kind: 'unknown', dbRevision: '1d6611b6ab7c' }, at);
    recorder.observe('i1', ref, { kind: 'unknown', dbRevision: '1d6611b6ab7c' });
    recorder.observe('i1', ref, { kind: 'unknown', dbRevision: 'd2f4e1b3c5a7' });
    recorder.observe('i2', ref, { kind: 'unknown', dbRevision: '1d6611b6ab7c' });
    expect(recorder.list().map((v) => [v.dbRevision, v.kind])).toEqual([
      ['1d6611b6ab7c', 'unknown-schema'],
      ['d2f4e1b3c5a7', 'unknown-schema'],
      ['1d6611b6ab7c', 'unknown-schema'],
    ]);
    expect(recorder.list()[0]?.at).toBe('2025-01-01T00:00:00.000Z');
    recorder.clear();
    expect(recorder.list()).toEqual([]);
  });

  it('keeps one stale exposure per continuous period, with its duration', () => {
    const recorder = createViolationRecorder();
    const t = (ms: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, 0, ms));
    recorder.observe('i1', ref, { kind: 'match' }, t(0));
    recorder.observe('i1', ref, { kind: 'stale', dbRevision: 'fe199e1abd77' }, t(100));
    recorder.observe('i1', ref, { kind: 'stale', dbRevision: '29ce7909c52b' }, t(200));
    const open = recorder.exposures();
    expect(open).toHaveLength(1);
    expect(open[0]?.until).toBeUndefined();
    recorder.ended('i1', t(450));
    recorder.observe('i1', ref, { kind: 'stale', dbRevision: '29ce7909c52b' }, t(500)); // runtime guards this; recorder reopens
    recorder.ended('i1', t(520));
    expect(recorder.exposures()).toEqual([
      expect.objectContaining({
        dbRevision: '29ce7909c52b',
        since: t(100).toISOString(),
        until: t(450).toISOString(),
        durationMs: 350,
      }),
      expect.objectContaining({ durationMs: 20 }),
    ]);
    expect(recorder.list()).toEqual([]);
  });

  it('notifies listeners until they unsubscribe', () => {
    const recorder = createViolationRecorder();
    const seen: string[] = [];
    const off = recorder.onViolation((v) => seen.push(v.dbRevision));
    recorder.observe('i1', ref, { kind: 'unknown', dbRevision: 'a1' });
    off();
    recorder.observe('i1', ref, { kind: 'unknown', dbRevision: 'b2' });
    expect(seen).toEqual(['a1']);
  });
});
