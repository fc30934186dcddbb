import { describe, expect, it } from 'vitest';
import { operationIdFor } from '../../../src/core/decide.js';
import { headForVersion } from '../../../src/core/heads.js';
import type { HoldTarget } from '../../../src/core/hold.js';
import { parseHeadsMap } from '../../../src/core/image-heads.js';
import type { Resolution } from '../../../src/core/resolution-cache.js';
import { parseAirflowVersion } from '../../../src/core/versions.js';
import {
  resolve,
  type HeldForResolution,
  type ResolveContext,
  type ResolveOutcome,
} from '../../../src/coordinator/steps/resolve.js';
import { workload } from './memory-context.js';

const head = (v: string): string => headForVersion(parseAirflowVersion(v)!)!;
const IMAGE = 'registry.corp:5000/airflow:build-4711';

interface MemoryResolveContext extends ResolveContext {
  resolution: Resolution | Error;
  revision: string | null;
  released: string[];
  downgrades: Array<{ name: string; target: HoldTarget }>;
  reports: ResolveOutcome[];
  /** What readHeadsMap answers: the newest running image's map (as it prints it), none, or a failure. */
  headsMap: Record<string, string> | undefined | Error;
}

function memory(
  overrides: Partial<Pick<MemoryResolveContext, 'resolution' | 'revision' | 'headsMap'>> = {},
): MemoryResolveContext {
  const ctx: MemoryResolveContext = {
    resolution: { version: '2.8.4', method: 'registry', digest: `sha256:${'a'.repeat(64)}`, durationMs: 12 },
    revision: head('2.9.3'),
    released: [],
    downgrades: [],
    reports: [],
    headsMap: undefined,
    async resolveImage() {
      if (ctx.resolution instanceof Error) throw ctx.resolution;
      return ctx.resolution;
    },
    async readRevision() {
      return ctx.revision;
    },
    async readHeadsMap() {
      if (ctx.headsMap instanceof Error) throw ctx.headsMap;
      return (
        ctx.headsMap && { map: parseHeadsMap(JSON.stringify(ctx.headsMap)), name: 'the heads map of image sha256:n' }
      );
    },
    async releaseHold(held) {
      ctx.released.push(held.workload.name);
    },
    async holdForDowngrade(held, target) {
      ctx.downgrades.push({ name: held.workload.name, target });
    },
    async reportResolution(_held, outcome) {
      ctx.reports.push(outcome);
    },
    ...overrides,
  };
  return ctx;
}

const held = (extra: Partial<HeldForResolution['target']> = {}): HeldForResolution => ({
  workload: workload('airflow-scheduler', { component: 'scheduler' }),
  target: { image: IMAGE, ...extra },
});

describe('resolve', () => {
  it('an older schema head than the database: held as a downgrade, from the database revision', async () => {
    const ctx = memory();
    const outcome = await resolve(ctx, held({ fromVersion: '2.9.3', fromRevision: head('2.9.3') }), undefined);
    const target = {
      operationId: operationIdFor('airflow', 'airflow', head('2.9.3'), head('2.8.4')),
      fromVersion: '2.9.3',
      toVersion: '2.8.4',
      fromRevision: head('2.9.3'),
      toRevision: head('2.8.4'),
    };
    expect(outcome).toMatchObject({ kind: 'downgrade', target });
    expect(outcome.reason).toMatch(
      /build-4711 is Airflow 2\.8\.4 \(registry\): 2\.9\.3 -> 2\.8\.4: schema head .* held as a downgrade/,
    );
    expect(ctx.downgrades).toEqual([{ name: 'airflow-scheduler', target }]);
    expect(ctx.released).toEqual([]);
    expect(ctx.reports).toEqual([outcome]);
  });

  it('the database wins over what admission believed: a stale from-version hint names no version', async () => {
    const ctx = memory({ revision: head('2.9.3') });
    const outcome = await resolve(ctx, held({ fromVersion: '2.10.5' }), undefined);
    expect(outcome).toMatchObject({ kind: 'downgrade', target: { fromRevision: head('2.9.3'), toVersion: '2.8.4' } });
  });

  it('forward, same head, same version, new install: released unchanged', async () => {
    for (const [version, revision] of [
      ['2.10.5', head('2.9.3')],
      ['2.9.2', head('2.9.3')],
      ['2.9.3', head('2.9.3')],
      ['2.8.4', null],
    ] as const) {
      const ctx = memory({ resolution: { version, method: 'probe-pod', durationMs: 900 }, revision });
      const outcome = await resolve(ctx, held({ fromVersion: '2.9.3' }), undefined);
      expect(outcome, version).toMatchObject({ kind: 'released' });
      expect(outcome.reason).toMatch(
        new RegExp(`is Airflow ${version.replace(/\./g, '\\.')} \\(probe-pod\\).*no downgrade, released`),
      );
      expect(ctx.released).toEqual(['airflow-scheduler']);
      expect(ctx.downgrades).toEqual([]);
    }
  });

  it('a target version known at admission (only the current was unknown) needs no image resolution', async () => {
    const ctx = memory({ resolution: new Error('must not be asked') });
    expect(await resolve(ctx, held({ toVersion: '2.8.4' }), undefined)).toMatchObject({
      kind: 'downgrade',
      resolution: { method: 'admission', version: '2.8.4' },
    });
  });

  it('nothing tells the version: kept held with the reason, nothing changed', async () => {
    const ctx = memory({ resolution: new Error('registry: HTTP 401; probe pod: exit 127') });
    const outcome = await resolve(ctx, held(), undefined);
    expect(outcome).toEqual({
      kind: 'kept',
      reason: `the version of ${IMAGE} is not resolved: registry: HTTP 401; probe pod: exit 127`,
    });
    expect(ctx.released).toEqual([]);
    expect(ctx.downgrades).toEqual([]);
    expect(ctx.reports).toEqual([outcome]);
  });

  it('a database revision the table does not know: kept held', async () => {
    const ctx = memory({ revision: 'ffffffffffff' });
    expect(await resolve(ctx, held(), undefined)).toMatchObject({
      kind: 'kept',
      reason: expect.stringMatching(/not in the guard's table/),
    });
  });

  it('under an open operation: its target joins it, anything else waits for it to end', async () => {
    const open = {
      id: 'dg-aaaaaaaaaaaaaaaa',
      fromVersion: '2.9.3',
      toVersion: '2.8.4',
      fromRevision: head('2.9.3'),
      toRevision: head('2.8.4'),
    };
    const ctx = memory();
    expect(await resolve(ctx, held(), open)).toMatchObject({
      kind: 'downgrade',
      target: { operationId: open.id, toVersion: '2.8.4', fromRevision: head('2.9.3') },
    });
    const other = memory({ resolution: { version: '3.0.2', method: 'registry', durationMs: 3 } });
    expect(await resolve(other, held(), open)).toMatchObject({
      kind: 'kept',
      reason: expect.stringMatching(/under operation dg-aaaaaaaaaaaaaaaa/),
    });
    expect(other.released).toEqual([]);
  });
});

describe('resolve past the built-in table: heads from the newest running image', () => {
  /** The 3.5.0 image's map: it lists 3.4.0 (past the table too) and itself. */
  const MAP = { '3.3.0': head('3.3.0'), '3.4.0': 'f0a1b2c3d4e6', '3.5.0': 'f0a1b2c3d4f2' };
  const known = (revision: string) => memory({ resolution: new Error('must not be asked'), revision, headsMap: MAP });

  it('3.5.0 -> 3.4.0 (both past the table): held as a downgrade with both heads from the image', async () => {
    const ctx = known('f0a1b2c3d4f2');
    const outcome = await resolve(ctx, held({ toVersion: '3.4.0', fromVersion: '3.5.0' }), undefined);
    const target = {
      operationId: operationIdFor('airflow', 'airflow', 'f0a1b2c3d4f2', 'f0a1b2c3d4e6'),
      fromVersion: '3.5.0',
      toVersion: '3.4.0',
      fromRevision: 'f0a1b2c3d4f2',
      toRevision: 'f0a1b2c3d4e6',
    };
    expect(outcome).toMatchObject({ kind: 'downgrade', target });
    expect(outcome.reason).toBe(
      `${IMAGE} is Airflow 3.4.0 (admission): 3.5.0 -> 3.4.0: schema head f0a1b2c3d4f2 -> f0a1b2c3d4e6 (the heads map of image sha256:n); held as a downgrade`,
    );
    expect(ctx.downgrades).toEqual([{ name: 'airflow-scheduler', target }]);
  });

  it('a version the table knows below a revision it does not: the image places the revision', async () => {
    const ctx = memory({
      revision: 'f0a1b2c3d4f2',
      headsMap: MAP,
      resolution: { version: '3.3.0', method: 'registry', durationMs: 4 },
    });
    expect(await resolve(ctx, held(), undefined)).toMatchObject({
      kind: 'downgrade',
      target: { fromVersion: '3.5.0', fromRevision: 'f0a1b2c3d4f2', toRevision: head('3.3.0') },
    });
  });

  it('same head or newer than the image knows: released unchanged', async () => {
    const same = known('f0a1b2c3d4e6');
    expect(await resolve(same, held({ toVersion: '3.4.1' }), undefined)).toMatchObject({ kind: 'released' });
    expect(same.released).toEqual(['airflow-scheduler']);
    const newer = known('f0a1b2c3d4f2');
    expect(await resolve(newer, held({ toVersion: '3.6.0' }), undefined)).toMatchObject({
      kind: 'released',
      reason: expect.stringMatching(/3\.6\.0 is newer than any version in the heads map of image sha256:n/),
    });
  });

  it('no pod to read a map from, an unreadable map, a revision the map lacks: kept held, saying why', async () => {
    const none = memory({ revision: 'f0a1b2c3d4f2', headsMap: undefined });
    expect((await resolve(none, held({ toVersion: '3.4.0' }), undefined)).reason).toMatch(
      /no known schema head for Airflow 3\.4\.0.*; no Running and Ready pod to read a heads map from$/,
    );
    const failing = memory({ revision: 'f0a1b2c3d4f2', headsMap: new Error('exec: exit 1') });
    expect((await resolve(failing, held({ toVersion: '3.4.0' }), undefined)).reason).toMatch(
      /the newer image's heads map is unreadable: exec: exit 1$/,
    );
    const lacking = memory({ revision: 'ffffffffffff', headsMap: MAP });
    const outcome = await resolve(lacking, held({ toVersion: '3.4.0' }), undefined);
    expect(outcome).toMatchObject({ kind: 'kept' });
    expect(outcome.reason).toMatch(/database revision ffffffffffff is not in the heads map of image sha256:n$/);
    for (const ctx of [none, failing, lacking]) {
      expect(ctx.released).toEqual([]);
      expect(ctx.downgrades).toEqual([]);
    }
  });
});

describe('the resolution in the operation it opens', () => {
  it('status names what was resolved, how and how long; an unreadable record says so', async () => {
    const { resolvedStep, resolvedAnnotation } = await import('../../../src/coordinator/resolution.js');
    const { operationStatus } = await import('../../../src/coordinator/operator-actions.js');
    const { formatStatusTable } = await import('../../../src/cli/commands/status.js');
    const { operation } = await import('./memory-context.js');
    const at = new Date('2026-12-01T10:00:01Z');
    const step = resolvedStep(
      resolvedAnnotation(IMAGE, {
        version: '3.0.2',
        method: 'registry',
        digest: `sha256:${'c'.repeat(64)}`,
        durationMs: 713,
      }),
      at,
    );
    expect(step).toEqual({
      step: 'resolve',
      outcome: 'ok',
      at: at.toISOString(),
      durationMs: 713,
      detail: `${IMAGE} is Airflow 3.0.2 (registry, sha256:${'c'.repeat(64)}, 713 ms)`,
    });
    const op = operation('confirm');
    const status = operationStatus({ ...op, steps: [...op.steps, step] }, at);
    expect(status.resolved).toEqual({ detail: step.detail, durationMs: 713 });
    expect(formatStatusTable([status])).toContain('3.1.0 -> 3.0.2 (resolved in 713 ms)');
    expect(resolvedStep('{"image":1}', at)).toMatchObject({
      durationMs: 0,
      detail: expect.stringMatching(/unreadable/),
    });
  });
});
