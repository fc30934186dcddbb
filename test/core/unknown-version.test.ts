// The unknown-version setting: `unknownVersion: hold | allow | deny` (default hold), `strict` its
// deprecated alias of deny, and conflicts between the two refused with one clear line.
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_CONFIG,
  parseGuardConfig,
  unknownVersionPolicy,
  withUnknownVersionFlags,
} from '../../src/core/config.js';
import { decide } from '../../src/core/decide.js';
import { readResolveTarget, releasePatch } from '../../src/core/hold.js';
import { applyJsonPatch } from '../../testbed/sim/apiserver/patch.js';
import { parseAdmissionReview } from '../../src/core/admission.js';
import { admissionReview, chartWorkload } from '../fixtures/admission/builders.js';

const scheduler = { kind: 'Deployment', component: 'scheduler' } as const;
const movingTag = parseAdmissionReview(
  admissionReview({
    operation: 'UPDATE',
    oldObject: chartWorkload({ ...scheduler, version: '3.1.0', stored: true }),
    object: chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true }),
  }),
);

describe('unknownVersion setting', () => {
  it('defaults to hold; strict: true and unknownVersion: deny both mean deny', () => {
    expect(unknownVersionPolicy(DEFAULT_CONFIG)).toBe('hold');
    expect(unknownVersionPolicy(parseGuardConfig({ unknownVersion: 'allow' }))).toBe('allow');
    expect(unknownVersionPolicy(parseGuardConfig({ unknownVersion: 'deny' }))).toBe('deny');
    expect(unknownVersionPolicy(parseGuardConfig({ strict: true }))).toBe('deny');
    expect(unknownVersionPolicy(parseGuardConfig({ strict: true, unknownVersion: 'deny' }))).toBe('deny');
  });

  it('decides an unknown version by the setting', () => {
    expect(decide(movingTag, {}, parseGuardConfig({ unknownVersion: 'allow' }))).toMatchObject({
      kind: 'unknown-version',
      allowed: true,
      patch: [],
      sideEffect: 'none',
      warnings: [expect.stringMatching(/admitted without a downgrade check/), expect.any(String)],
    });
    expect(decide(movingTag, {}, DEFAULT_CONFIG)).toMatchObject({
      kind: 'unknown-version',
      allowed: true,
      sideEffect: 'resolve-version',
      hold: { kind: 'Deployment', changes: [{ path: '/spec/paused', held: true }] },
    });
    expect(decide(movingTag, {}, parseGuardConfig({ unknownVersion: 'deny' }))).toMatchObject({
      kind: 'unknown-version',
      allowed: false,
      denial: { code: 403 },
    });
  });

  it('both versions past the table (3.5.0 -> 3.4.0): held for the coordinator to read the heads from the newer image', () => {
    const pastTable = parseAdmissionReview(
      admissionReview({
        operation: 'UPDATE',
        oldObject: chartWorkload({ ...scheduler, version: '3.5.0', stored: true }),
        object: chartWorkload({ ...scheduler, version: '3.4.0', stored: true }),
      }),
    );
    const held = decide(pastTable, {}, DEFAULT_CONFIG);
    expect(held).toMatchObject({
      kind: 'unknown-version',
      allowed: true,
      sideEffect: 'resolve-version',
      reason: expect.stringMatching(/no known schema head for Airflow 3\.4\.0.*held until the version is resolved/),
      warnings: [expect.any(String), expect.stringMatching(/the newer image's own heads map/), expect.any(String)],
    });
    const object = applyJsonPatch(pastTable.object, held.patch);
    expect(readResolveTarget(object)).toEqual({
      image: 'apache/airflow:3.4.0',
      toVersion: '3.4.0',
      fromVersion: '3.5.0',
    });
    expect(decide(pastTable, {}, parseGuardConfig({ unknownVersion: 'allow' }))).toMatchObject({
      kind: 'unknown-version',
      patch: [],
      warnings: [expect.stringMatching(/admitted without a downgrade check/), expect.any(String)],
    });
  });

  it('a moving tag restarted with the spec unchanged is admitted as "image unchanged" under every policy (README: pin digests)', () => {
    const latest = chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true });
    const restarted = structuredClone(latest) as { spec: { template: { metadata: { annotations?: object } } } };
    // `kubectl rollout restart`: only the template's restartedAt annotation changes.
    restarted.spec.template.metadata.annotations = { 'kubectl.kubernetes.io/restartedAt': '2026-12-03T17:00:00Z' };
    const restart = parseAdmissionReview(
      admissionReview({ operation: 'UPDATE', oldObject: latest, object: restarted }),
    );
    for (const policy of ['hold', 'allow', 'deny'] as const) {
      expect(decide(restart, {}, parseGuardConfig({ unknownVersion: policy })), policy).toMatchObject({
        kind: 'no-version-change',
        allowed: true,
        patch: [],
        reason: expect.stringMatching(/^image unchanged \(version unknown: /),
      });
    }
    // Once resolved, the same tag on both sides is the same version: still no change to hold.
    expect(decide(restart, { imageVersions: { 'apache/airflow:latest': '3.1.0' } }, DEFAULT_CONFIG)).toMatchObject({
      kind: 'no-version-change',
      patch: [],
    });
  });

  it('refuses a file where strict contradicts unknownVersion, and values it does not know', () => {
    expect(() => parseGuardConfig({ strict: true, unknownVersion: 'allow' })).toThrow(
      /unknownVersion: strict: true \(deprecated alias of unknownVersion: deny\) conflicts with unknownVersion: allow/,
    );
    expect(() => parseGuardConfig({ unknownVersion: 'maybe' })).toThrow(ConfigError);
  });

  it('flags: --unknown-version sets it, --strict is deny, contradictions are ConfigErrors', () => {
    expect(unknownVersionPolicy(withUnknownVersionFlags(DEFAULT_CONFIG, { unknownVersion: 'deny' }))).toBe('deny');
    expect(unknownVersionPolicy(withUnknownVersionFlags(DEFAULT_CONFIG, { strict: true }))).toBe('deny');
    expect(
      unknownVersionPolicy(withUnknownVersionFlags(DEFAULT_CONFIG, { strict: true, unknownVersion: 'deny' })),
    ).toBe('deny');
    expect(withUnknownVersionFlags(DEFAULT_CONFIG, {})).toBe(DEFAULT_CONFIG);
    expect(() => withUnknownVersionFlags(DEFAULT_CONFIG, { strict: true, unknownVersion: 'allow' })).toThrow(
      /--strict \(deprecated alias of --unknown-version deny\) conflicts with --unknown-version allow/,
    );
    expect(() => withUnknownVersionFlags(DEFAULT_CONFIG, { unknownVersion: 'sometimes' })).toThrow(
      /--unknown-version must be one of hold, allow, deny/,
    );
    expect(() => withUnknownVersionFlags(parseGuardConfig({ strict: true }), { unknownVersion: 'allow' })).toThrow(
      /--unknown-version allow conflicts with the configuration's unknownVersion deny/,
    );
    expect(() => withUnknownVersionFlags(parseGuardConfig({ unknownVersion: 'allow' }), { strict: true })).toThrow(
      /--strict conflicts/,
    );
  });
});

describe('unknownVersion: hold', () => {
  const config = DEFAULT_CONFIG;

  it('holds a change to an image whose tag names no version, naming the image and the current point', () => {
    const decision = decide(movingTag, {}, config);
    expect(decision.reason).toMatch(
      /cannot tell the Airflow version of deployment\/airflow-scheduler.*held until the version is resolved/,
    );
    expect(decision.warnings[0]).toMatch(/moving tag.*; held until its version is resolved\.$/);
    expect(decision.warnings[1]).toMatch(
      /is held \(.*\) while the version of 'apache\/airflow:latest' is read from its labels in the registry, else from a probe pod running "airflow version"/,
    );
    const held = applyJsonPatch(movingTag.object, decision.patch);
    expect(readResolveTarget(held)).toEqual({
      image: 'apache/airflow:latest',
      fromVersion: '3.1.0',
      fromRevision: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    // Released unchanged: the inverse patch gives back the object as it was sent.
    expect(applyJsonPatch(held, releasePatch(held))).toEqual(movingTag.object);
  });

  it('a dry run is answered with the hold but asks the coordinator for nothing', () => {
    const dry = parseAdmissionReview(
      admissionReview({
        operation: 'UPDATE',
        dryRun: true,
        oldObject: chartWorkload({ ...scheduler, version: '3.1.0', stored: true }),
        object: chartWorkload({ ...scheduler, image: 'registry.corp:5000/airflow:build-4711', stored: true }),
      }),
    );
    expect(decide(dry, {}, config)).toMatchObject({ kind: 'unknown-version', sideEffect: 'none' });
  });

  it('a resolved image answers at once: a downgrade by its resolved version, a forward move released', () => {
    const privateTag = (image: string, old: string): ReturnType<typeof parseAdmissionReview> =>
      parseAdmissionReview(
        admissionReview({
          operation: 'UPDATE',
          oldObject: chartWorkload({ ...scheduler, image: old, stored: true }),
          object: chartWorkload({ ...scheduler, image, stored: true }),
        }),
      );
    const imageVersions = {
      'registry.corp:5000/airflow:build-4711': '2.9.3',
      'registry.corp:5000/airflow:rel-agnostic-airflow-main-2.8.4': '2.8.4',
    };
    const down = privateTag(
      'registry.corp:5000/airflow:rel-agnostic-airflow-main-2.8.4',
      'registry.corp:5000/airflow:build-4711',
    );
    expect(decide(down, { imageVersions }, config)).toMatchObject({
      kind: 'downgrade',
      from: { version: '2.9.3', source: 'oldObject' },
      to: { version: '2.8.4' },
    });
    const up = privateTag(
      'registry.corp:5000/airflow:build-4711',
      'registry.corp:5000/airflow:rel-agnostic-airflow-main-2.8.4',
    );
    expect(decide(up, { imageVersions }, config)).toMatchObject({ kind: 'forward', patch: [] });
    // Not resolved yet: held, whatever the tag's text looks like.
    expect(decide(down, {}, config)).toMatchObject({ kind: 'unknown-version', sideEffect: 'resolve-version' });
  });

  it("labels win over a non-upstream tag's version-like text; upstream tags and annotations win over labels", () => {
    const change = (image: string, annotations: Record<string, string> = {}): ReturnType<typeof parseAdmissionReview> =>
      parseAdmissionReview(
        admissionReview({
          operation: 'UPDATE',
          oldObject: chartWorkload({ ...scheduler, version: '3.1.0', stored: true }),
          object: chartWorkload({ ...scheduler, image, annotations, stored: true }),
        }),
      );
    const imageVersions = { 'corp/airflow:3.1.0': '3.0.2', 'apache/airflow:3.1.0': '3.0.2' };
    expect(decide(change('corp/airflow:3.1.0'), { imageVersions }, config)).toMatchObject({ kind: 'downgrade' });
    expect(decide(change('apache/airflow:3.1.0'), { imageVersions }, config)).toMatchObject({
      kind: 'no-version-change',
    });
    expect(
      decide(
        change('corp/airflow:3.1.0', { 'airflow-downgrade-guard/airflow-version': '3.1.0' }),
        { imageVersions },
        config,
      ),
    ).toMatchObject({ kind: 'no-version-change' });
  });
});
