import { describe, expect, it } from 'vitest';
import {
  AdmissionReviewError,
  guardedWorkloadKind,
  parseAdmissionReview,
  parseAdmissionReviewJson,
} from '../../src/core/admission.js';
import { ConfigError, DEFAULT_CONFIG, parseGuardConfig } from '../../src/core/config.js';
import { admissionReview, chartWorkload, versionChange } from '../fixtures/admission/builders.js';

describe('parseAdmissionReview', () => {
  it('normalises a Helm UPDATE', () => {
    const r = parseAdmissionReview(
      versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2', { uid: 'abc-1' }),
    );
    expect(r).toMatchObject({
      uid: 'abc-1',
      operation: 'UPDATE',
      namespace: 'airflow',
      name: 'airflow-scheduler',
      dryRun: false,
      userInfo: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    });
  });

  const valid = () => versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2') as any;
  it.each([
    ['not an object', () => [1, 2], /expected a JSON object/],
    [
      'wrong apiVersion',
      () => ({ ...valid(), apiVersion: 'admission.k8s.io/v1beta1' }),
      /apiVersion must be 'admission.k8s.io\/v1'/,
    ],
    ['wrong kind', () => ({ ...valid(), kind: 'ConfigMap' }), /kind must be 'AdmissionReview'/],
    ['no request', () => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request/],
    [
      'no uid',
      () => {
        const v = valid();
        delete v.request.uid;
        return v;
      },
      /request\.uid/,
    ],
    [
      'uid with spaces',
      () => {
        const v = valid();
        v.request.uid = 'a b';
        return v;
      },
      /request\.uid/,
    ],
    [
      'bad operation',
      () => {
        const v = valid();
        v.request.operation = 'PATCH';
        return v;
      },
      /request\.operation/,
    ],
    [
      'no object on UPDATE',
      () => {
        const v = valid();
        v.request.object = null;
        return v;
      },
      /request\.object must be a Deployment/,
    ],
    [
      'no oldObject on UPDATE',
      () => {
        const v = valid();
        v.request.oldObject = null;
        return v;
      },
      /request\.oldObject must be a Deployment/,
    ],
    [
      'dryRun not boolean',
      () => {
        const v = valid();
        v.request.dryRun = 'yes';
        return v;
      },
      /request\.dryRun/,
    ],
  ])('%s is a one-line AdmissionReviewError', (_name, build, message) => {
    let error: unknown;
    try {
      parseAdmissionReview(build());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AdmissionReviewError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toMatch(/\n/);
  });

  it('DELETE needs no object', () => {
    const review = admissionReview({
      operation: 'DELETE',
      object: null,
      oldObject: chartWorkload({ kind: 'Job', component: 'x' }),
    });
    expect(parseAdmissionReview(review).operation).toBe('DELETE');
  });

  it('parseAdmissionReviewJson explains text that is not JSON', () => {
    expect(() => parseAdmissionReviewJson('{"apiVersion":')).toThrow(/^invalid JSON: /);
  });

  it('guardedWorkloadKind picks CREATE/UPDATE of the four kinds only', () => {
    const gvk = (group: string, kind: string) => ({ group, version: 'v1', kind });
    expect(guardedWorkloadKind({ kind: gvk('apps', 'StatefulSet'), operation: 'CREATE' })).toBe('StatefulSet');
    expect(guardedWorkloadKind({ kind: gvk('batch', 'CronJob'), operation: 'UPDATE' })).toBe('CronJob');
    expect(guardedWorkloadKind({ kind: gvk('apps', 'DaemonSet'), operation: 'UPDATE' })).toBeUndefined();
    expect(guardedWorkloadKind({ kind: gvk('apps', 'Deployment'), operation: 'DELETE' })).toBeUndefined();
    expect(
      guardedWorkloadKind({ kind: gvk('apps', 'Deployment'), operation: 'UPDATE', subResource: 'status' }),
    ).toBeUndefined();
    expect(guardedWorkloadKind({ kind: gvk('extensions', 'Deployment'), operation: 'UPDATE' })).toBeUndefined();
  });
});

describe('parseGuardConfig', () => {
  it('defaults', () => {
    expect(parseGuardConfig({})).toEqual(DEFAULT_CONFIG);
    expect(DEFAULT_CONFIG).toEqual({
      labels: { release: [], component: [], marker: [] },
      strict: false,
      trustedUsernames: [],
      order: 'drain-first',
      registry: { mirrors: {}, caFiles: [], tagTtlMs: 300_000, probeTimeoutMs: 120_000 },
    });
  });

  it.each([
    [{ strict: 'yes' }, /strict/],
    [{ labels: { release: ['bad key!'] } }, /labels\.release\.0: must be a Kubernetes label key/],
    [{ trustedUsernames: [''] }, /trustedUsernames\.0/],
    [{ unknownOption: true }, /unknownOption|Unrecognized/],
  ])('rejects %j', (input, message) => {
    expect(() => parseGuardConfig(input)).toThrow(ConfigError);
    expect(() => parseGuardConfig(input)).toThrow(message);
  });
});
