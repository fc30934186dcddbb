// Backing for docs/threat-model.md: what reaches exec and from where.
import { describe, expect, it } from 'vitest';
import { openingProblem } from '../../src/coordinator/operation.js';
import { chooseExecPod } from '../../src/coordinator/release-view.js';
import { downgradeArgv, migrateArgv, UnsafeCommandError } from '../../src/core/downgrade-command.js';
import { versionChange } from '../fixtures/admission/builders.js';
import { checkReview, SMUGGLED } from './fuzz.js';
import { head } from './support.js';
import { reviewAdmission } from '../../src/core/review.js';
import { DEFAULT_CONFIG, ANNOTATIONS } from '../../src/core/config.js';
import { encodePatch } from '../../src/core/response.js';

describe('exec argv', () => {
  it.each([...SMUGGLED, '', 'HEAD', 'base; id', 'a'.repeat(40), '29ce7909c52b ', '-1'])(
    'refuses revision %j',
    (revision) => {
      expect(() => downgradeArgv(revision)).toThrow(UnsafeCommandError);
      expect(() => migrateArgv(revision)).toThrow(UnsafeCommandError);
    },
  );

  it('is the fixed words plus one validated revision', () => {
    expect(downgradeArgv(head('3.0.2'))).toEqual([
      'airflow',
      'db',
      'downgrade',
      '--to-revision',
      head('3.0.2'),
      '--yes',
    ]);
    expect(migrateArgv(head('3.1.0'))).toEqual(['airflow', 'db', 'migrate', '--to-revision', head('3.1.0')]);
  });
});

describe('operations opened from annotations', () => {
  const legit = { fromVersion: '3.1.0', toVersion: '3.0.2', fromRevision: head('3.1.0'), toRevision: head('3.0.2') };
  it('accepts what the webhook writes', () => {
    expect(openingProblem(legit)).toBeUndefined();
  });
  it.each([
    ['an arbitrary older revision', { ...legit, toRevision: head('2.0.0') }],
    [
      'a target newer than the source',
      { ...legit, fromRevision: head('3.0.2'), toRevision: head('3.1.0'), toVersion: '3.1.0', fromVersion: '3.0.2' },
    ],
    ['an unknown source revision', { ...legit, fromRevision: 'deadbeef0000' }],
    ['the same revision', { ...legit, fromRevision: head('3.0.2') }],
  ])('refuses %s', (_what, input) => {
    expect(openingProblem(input)).toMatch(/revision/);
  });
});

describe('exec target choice', () => {
  const pod = (o: Partial<Parameters<typeof chooseExecPod>[0] extends Iterable<infer P> ? P : never>) =>
    ({
      namespace: 'airflow',
      release: 'airflow',
      name: 'p',
      head: head('3.1.0'),
      phase: 'Running',
      ready: true,
      terminating: false,
      container: 'c',
      role: 'metadata-db',
      component: 'scheduler',
      ...o,
    }) as never;
  it('only a Running, Ready pod of this release, in its namespace, on the newer head', () => {
    const pods = [
      pod({ name: 'other-ns', namespace: 'evil' }),
      pod({ name: 'other-release', release: 'evil' }),
      pod({ name: 'old-head', head: head('3.0.2') }),
      pod({ name: 'not-ready', ready: false }),
      pod({ name: 'terminating', terminating: true }),
    ];
    expect(chooseExecPod(pods, 'airflow', 'airflow', head('3.1.0'))).toBeUndefined();
    expect(
      (chooseExecPod([...pods, pod({ name: 'good' })], 'airflow', 'airflow', head('3.1.0')) as { name: string }).name,
    ).toBe('good');
  });
});

describe('the fuzz property can fail', () => {
  it('flags a response whose hold carries a smuggled version', () => {
    const review = versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2');
    const result = reviewAdmission(review, () => ({ runningVersion: '3.1.0' }), DEFAULT_CONFIG);
    expect(() => checkReview(review)).not.toThrow();
    const forged = structuredClone(result);
    forged.response.response.patch = encodePatch([
      {
        op: 'add',
        path: `/metadata/annotations/${ANNOTATIONS.toVersion.replace('/', '~1')}`,
        value: '3.0.2; rm -rf /',
      },
    ]);
    return import('./fuzz.js').then(({ checkResponse }) => expect(() => checkResponse(forged)).toThrow(/version/));
  });
});
