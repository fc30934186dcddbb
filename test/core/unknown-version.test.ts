// The unknown-version setting: `unknownVersion: allow | deny` (default allow), `strict` its deprecated
// alias of deny, and conflicts between the two refused with one clear line.
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_CONFIG,
  parseGuardConfig,
  unknownVersionPolicy,
  withUnknownVersionFlags,
} from '../../src/core/config.js';
import { decide } from '../../src/core/decide.js';
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
  it('defaults to allow; strict: true and unknownVersion: deny both mean deny', () => {
    expect(unknownVersionPolicy(DEFAULT_CONFIG)).toBe('allow');
    expect(unknownVersionPolicy(parseGuardConfig({ unknownVersion: 'deny' }))).toBe('deny');
    expect(unknownVersionPolicy(parseGuardConfig({ strict: true }))).toBe('deny');
    expect(unknownVersionPolicy(parseGuardConfig({ strict: true, unknownVersion: 'deny' }))).toBe('deny');
  });

  it('decides an unknown version by the setting', () => {
    expect(decide(movingTag, {}, parseGuardConfig({ unknownVersion: 'allow' }))).toMatchObject({
      kind: 'unknown-version',
      allowed: true,
    });
    expect(decide(movingTag, {}, parseGuardConfig({ unknownVersion: 'deny' }))).toMatchObject({
      kind: 'unknown-version',
      allowed: false,
      denial: { code: 403 },
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
      /--unknown-version must be one of allow, deny/,
    );
    expect(() => withUnknownVersionFlags(parseGuardConfig({ strict: true }), { unknownVersion: 'allow' })).toThrow(
      /--unknown-version allow conflicts with the configuration's unknownVersion deny/,
    );
    expect(() => withUnknownVersionFlags(parseGuardConfig({ unknownVersion: 'allow' }), { strict: true })).toThrow(
      /--strict conflicts/,
    );
  });
});
