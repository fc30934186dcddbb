import { describe, expect, it } from 'vitest';
import type { ReleaseState } from '../../src/core/decide.js';
import { WorkerStateMirror } from '../../src/serve/admission-protocol.js';

const running: ReleaseState = { runningVersion: '3.1.0', dbRevision: 'cc92b33c6709', workloads: [] };

describe('WorkerStateMirror (the admission worker gets only release states that changed)', () => {
  it('sends a state once, then only when it differs', () => {
    const mirror = new WorkerStateMirror();
    expect(mirror.update('ns/airflow', running)).toBe(true);
    expect(mirror.update('ns/airflow', structuredClone(running))).toBe(false);
    expect(mirror.update('ns/airflow', { ...running, runningVersion: '3.0.2' })).toBe(true);
    expect(mirror.update('ns/airflow', { ...running, runningVersion: '3.0.2' })).toBe(false);
  });

  it('keeps releases apart', () => {
    const mirror = new WorkerStateMirror();
    expect(mirror.update('a/airflow', running)).toBe(true);
    expect(mirror.update('b/airflow', running)).toBe(true);
    expect(mirror.update('a/airflow', running)).toBe(false);
  });

  it('sends the removal of a state (null) once, and nothing for a release the worker never had', () => {
    const mirror = new WorkerStateMirror();
    expect(mirror.update('ns/gone', null)).toBe(false);
    expect(mirror.update('ns/airflow', running)).toBe(true);
    expect(mirror.update('ns/airflow', null)).toBe(true);
    expect(mirror.update('ns/airflow', null)).toBe(false);
    expect(mirror.update('ns/airflow', running)).toBe(true);
  });
});
