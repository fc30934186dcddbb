import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, parseGuardConfig } from '../../src/core/config.js';
import { boundedWarnings, decodePatch } from '../../src/core/response.js';
import { reviewAdmission } from '../../src/core/review.js';
import { chartWorkload, admissionReview, versionChange } from '../fixtures/admission/builders.js';

describe('toAdmissionResponse', () => {
  it('a downgrade: allowed with a base64 JSON Patch and warnings', () => {
    const { response, decision } = reviewAdmission(
      versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2', { uid: 'u-1' }),
      () => ({}),
      DEFAULT_CONFIG,
    );
    expect(response.apiVersion).toBe('admission.k8s.io/v1');
    expect(response.kind).toBe('AdmissionReview');
    expect(response.response).toMatchObject({ uid: 'u-1', allowed: true, patchType: 'JSONPatch' });
    expect(decodePatch(response.response)).toEqual(decision.patch);
    expect(response.response.warnings).toEqual(decision.warnings);
    expect(response.response.status).toBeUndefined();
  });

  it('a pass-through: allowed, no patch, no warnings', () => {
    const { response } = reviewAdmission(
      versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.0.2', '3.1.0', { uid: 'u-2' }),
      () => ({}),
      DEFAULT_CONFIG,
    );
    expect(response.response).toEqual({ uid: 'u-2', allowed: true });
  });

  it('a denial carries status code and message', () => {
    const review = admissionReview({
      operation: 'UPDATE',
      uid: 'u-3',
      oldObject: chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' }),
      object: chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', image: 'apache/airflow:latest' }),
    });
    const { response } = reviewAdmission(review, () => ({}), parseGuardConfig({ strict: true }));
    expect(response.response).toMatchObject({ uid: 'u-3', allowed: false, status: { code: 403 } });
    expect(response.response.patch).toBeUndefined();
  });

  it('asks for release state only for Airflow workloads', () => {
    const asked: string[] = [];
    const stateFor = (ns: string, release: string) => (asked.push(`${ns}/${release}`), {});
    reviewAdmission(
      versionChange({ kind: 'Deployment', component: 'nginx', scheme: 'none' }, '1.0.0', '1.0.1'),
      stateFor,
      DEFAULT_CONFIG,
    );
    reviewAdmission(
      versionChange(
        { kind: 'Deployment', component: 'scheduler', release: 'etl', namespace: 'data' },
        '3.0.2',
        '3.0.2',
      ),
      stateFor,
      DEFAULT_CONFIG,
    );
    expect(asked).toEqual(['data/etl']);
  });
});

describe('boundedWarnings', () => {
  it('cuts long warnings to 256 characters, keeps ASCII, and stops at 4096 in total', () => {
    const out = boundedWarnings([
      'x'.repeat(300),
      'caf\u00e9\nline',
      ...Array.from({ length: 40 }, () => 'y'.repeat(200)),
    ]);
    expect(out[0]).toHaveLength(256);
    expect(out[0]!.endsWith('...')).toBe(true);
    expect(out[1]).toBe('caf  line');
    expect(out.join('').length).toBeLessThanOrEqual(4096);
  });
});

describe('warnings carry their reason within the first 256 characters (what Helm and kubectl print)', () => {
  it('an unknown version behind a long image reference still says why, and what the guard did', () => {
    const image =
      'registry.internal.example.com/platform/data-engineering/airflow/custom-airflow:rel-agnostic-airflow-main-20241203-abcdef0123456789';
    const review = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({
        kind: 'Deployment',
        component: 'scheduler',
        name: 'airflow-production-scheduler',
        version: '3.1.0',
      }),
      object: chartWorkload({
        kind: 'Deployment',
        component: 'scheduler',
        name: 'airflow-production-scheduler',
        image,
      }),
    });
    for (const [config, did] of [
      [DEFAULT_CONFIG, /does not name an Airflow version; held until its version is resolved\.$/],
      [
        parseGuardConfig({ unknownVersion: 'allow' }),
        /does not name an Airflow version; admitted without a downgrade check\.$/,
      ],
    ] as const) {
      const { response, decision } = reviewAdmission(review, () => ({ runningVersion: '3.1.0' }), config);
      expect(decision.kind).toBe('unknown-version');
      const first = response.response.warnings?.[0] ?? '';
      expect(decision.warnings[0]!.length).toBeGreaterThan(256); // the uncut text would be cut
      expect(first.length).toBeLessThanOrEqual(256);
      expect(first).toMatch(did);
      expect(first).toContain('deployment/airflow-production-scheduler');
    }
  });

  it('short warnings and their quoted values stay exactly as written', () => {
    expect(boundedWarnings([`tag 'rel-agnostic-airflow-main-20241203-abcdef0123456789' is fine`])).toEqual([
      `tag 'rel-agnostic-airflow-main-20241203-abcdef0123456789' is fine`,
    ]);
  });
});
