// The hand-written AdmissionReview check (the hot path) must never accept what the zod schema
// refuses, and must read the same request out of what both accept.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADMISSION_VALIDATORS } from '../../src/core/admission.js';
import { FIXTURE_REVIEWS, hostileReview } from '../faults/fuzz.js';

type Json = Record<string, unknown>;

const FIELDS = [
  'uid',
  'kind',
  'resource',
  'subResource',
  'requestKind',
  'requestResource',
  'requestSubResource',
  'name',
  'namespace',
  'operation',
  'userInfo',
  'dryRun',
  'options',
];

/** A fixture review with one request field (or one of userInfo's) replaced by anything. */
const mutatedReview = fc
  .tuple(
    fc.constantFrom(...FIXTURE_REVIEWS),
    fc.constantFrom(...FIELDS, 'userInfo.username', 'userInfo.groups', 'userInfo.uid', 'userInfo.extra'),
    fc.anything(),
  )
  .map(([review, field, value]) => {
    const copy = structuredClone(review) as { request: Json };
    const [head, tail] = field.split('.') as [string, string | undefined];
    if (tail) copy.request[head] = { ...((copy.request[head] as Json | undefined) ?? {}), [tail]: value };
    else copy.request[head] = value;
    return copy as Json;
  });

/** The fields the guard reads from a validated request (unknown keys are ignored either way). */
function used(request: unknown): Json {
  const r = request as Json & { kind: Json; resource: Json; userInfo: Json };
  return {
    uid: r.uid,
    kind: [r.kind.group, r.kind.version, r.kind.kind],
    resource: [r.resource.group, r.resource.version, r.resource.resource],
    subResource: r.subResource,
    operation: r.operation,
    namespace: r.namespace,
    name: r.name,
    user: [r.userInfo.username, r.userInfo.groups, r.userInfo.uid],
    object: r.object,
    oldObject: r.oldObject,
    dryRun: r.dryRun,
    options: r.options,
  };
}

function agrees(input: unknown): boolean {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return true;
  const fast = ADMISSION_VALIDATORS.fast(input as Json);
  if (fast === undefined) return true; // the schema decides (and words the error)
  const schema = ADMISSION_VALIDATORS.schema(input as Json);
  expect(schema.success).toBe(true);
  expect(used(fast)).toEqual(used(schema.request));
  return true;
}

describe('AdmissionReview fast check vs schema', () => {
  it('accepts every fixture the schema accepts', () => {
    for (const review of FIXTURE_REVIEWS) {
      expect(ADMISSION_VALIDATORS.schema(review).success).toBe(true);
      expect(ADMISSION_VALIDATORS.fast(review)).toBeDefined();
    }
  });

  it('never accepts a mutated review the schema refuses', () => {
    fc.assert(
      fc.property(mutatedReview, (review) => agrees(review)),
      { numRuns: 3000, seed: 7 },
    );
  });

  it('never accepts a hostile review the schema refuses', () => {
    fc.assert(
      fc.property(hostileReview, (review) => agrees(review)),
      { numRuns: 1000, seed: 11 },
    );
  });
});
