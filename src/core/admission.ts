// Parse and validate admission.k8s.io/v1 AdmissionReview requests. Malformed input becomes an
// AdmissionReviewError with a one-line message; valid input a normalised AdmissionRequest.
import { z } from 'zod';
import { isJsonObject, type JsonObject, type WorkloadKind } from './objects.js';

export class AdmissionReviewError extends Error {
  override name = 'AdmissionReviewError';
}

const groupVersionKind = z.object({
  group: z.string().max(253),
  version: z.string().min(1).max(63),
  kind: z.string().min(1).max(253),
});
const groupVersionResource = z.object({
  group: z.string().max(253),
  version: z.string().min(1).max(63),
  resource: z.string().min(1).max(253),
});

const requestSchema = z.object({
  uid: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[\x21-\x7e]+$/, 'must be printable without spaces'),
  kind: groupVersionKind,
  resource: groupVersionResource,
  subResource: z.string().max(253).optional(),
  requestKind: groupVersionKind.optional(),
  requestResource: groupVersionResource.optional(),
  requestSubResource: z.string().max(253).optional(),
  name: z.string().max(253).optional(),
  namespace: z.string().max(253).optional(),
  operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
  userInfo: z.object({
    username: z.string().max(1024).optional(),
    uid: z.string().max(1024).optional(),
    groups: z.array(z.string().max(1024)).optional(),
    extra: z.record(z.string(), z.array(z.string())).optional(),
  }),
  object: z.unknown().optional(),
  oldObject: z.unknown().optional(),
  dryRun: z.boolean().optional(),
  options: z.unknown().optional(),
});

const reviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1', { error: "apiVersion must be 'admission.k8s.io/v1'" }),
  kind: z.literal('AdmissionReview', { error: "kind must be 'AdmissionReview'" }),
  request: requestSchema,
});

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: { group: string; version: string; resource: string };
  subResource?: string;
  operation: Operation;
  /** '' when the request names none (cluster-scoped, or generateName on CREATE). */
  namespace: string;
  name: string;
  userInfo: { username: string; uid?: string; groups: string[] };
  object: unknown;
  oldObject: unknown;
  dryRun: boolean;
  options?: unknown;
}

function oneLine(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid AdmissionReview';
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem(s))` : '';
  return `invalid AdmissionReview: ${where}${issue.message}${more}`;
}

type ReviewRequest = z.infer<typeof requestSchema>;

/** Validates a parsed JSON value as an AdmissionReview v1 request; throws AdmissionReviewError. */
export function parseAdmissionReview(input: unknown): AdmissionRequest {
  if (!isJsonObject(input)) throw new AdmissionReviewError('invalid AdmissionReview: expected a JSON object');
  const request = normalisedRequest(validRequestOf(input) ?? requestFromSchema(input));
  requireObjectsOfGuardedRequest(request);
  return request;
}

/** zod validates what the fast check did not accept, and words the error. */
function requestFromSchema(input: JsonObject): ReviewRequest {
  const parsed = reviewSchema.safeParse(input);
  if (!parsed.success) throw new AdmissionReviewError(oneLine(parsed.error));
  return parsed.data.request;
}

function normalisedRequest(r: ReviewRequest): AdmissionRequest {
  const request: AdmissionRequest = {
    uid: r.uid,
    kind: { group: r.kind.group, version: r.kind.version, kind: r.kind.kind },
    resource: { group: r.resource.group, version: r.resource.version, resource: r.resource.resource },
    operation: r.operation,
    namespace: r.namespace ?? '',
    name: r.name ?? '',
    userInfo: { username: r.userInfo.username ?? '', groups: r.userInfo.groups ? [...r.userInfo.groups] : [] },
    object: r.object ?? null,
    oldObject: r.oldObject ?? null,
    dryRun: r.dryRun ?? false,
  };
  if (r.subResource) request.subResource = r.subResource;
  if (r.userInfo.uid !== undefined) request.userInfo.uid = r.userInfo.uid;
  if (r.options !== undefined) request.options = r.options;
  return request;
}

// The same rules as reviewSchema, checked by hand for the request every admission call validates
// (zod was the largest part of the core's time). Anything it does not accept goes to zod, which
// decides and words the error, so a gap here can only cost time, never admit what zod refuses.
const UID = /^[\x21-\x7e]+$/;
const OPERATIONS: ReadonlySet<unknown> = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

function validRequestOf(input: JsonObject): ReviewRequest | undefined {
  if (input.apiVersion !== 'admission.k8s.io/v1' || input.kind !== 'AdmissionReview') return undefined;
  const r = input.request;
  if (!isJsonObject(r)) return undefined;
  const valid =
    typeof r.uid === 'string' &&
    r.uid.length <= 128 &&
    UID.test(r.uid) &&
    isGroupVersion(r.kind, 'kind') &&
    isGroupVersion(r.resource, 'resource') &&
    isOptionalString(r.subResource, 253) &&
    (r.requestKind === undefined || isGroupVersion(r.requestKind, 'kind')) &&
    (r.requestResource === undefined || isGroupVersion(r.requestResource, 'resource')) &&
    isOptionalString(r.requestSubResource, 253) &&
    isOptionalString(r.name, 253) &&
    isOptionalString(r.namespace, 253) &&
    OPERATIONS.has(r.operation) &&
    isUserInfo(r.userInfo) &&
    (r.dryRun === undefined || typeof r.dryRun === 'boolean');
  return valid ? (r as ReviewRequest) : undefined;
}

/** Both validators, for the property test that the fast check never accepts what the schema refuses. */
export const ADMISSION_VALIDATORS = {
  fast: (input: JsonObject): unknown => validRequestOf(input),
  schema: (input: JsonObject): { success: boolean; request?: unknown } => {
    const parsed = reviewSchema.safeParse(input);
    return parsed.success ? { success: true, request: parsed.data.request } : { success: false };
  },
} as const;

function isGroupVersion(value: unknown, last: 'kind' | 'resource'): boolean {
  if (!isJsonObject(value)) return false;
  const { group, version } = value;
  const name = value[last];
  return (
    typeof group === 'string' &&
    group.length <= 253 &&
    typeof version === 'string' &&
    version.length >= 1 &&
    version.length <= 63 &&
    typeof name === 'string' &&
    name.length >= 1 &&
    name.length <= 253
  );
}

function isOptionalString(value: unknown, max: number): boolean {
  return value === undefined || (typeof value === 'string' && value.length <= max);
}

function isUserInfo(value: unknown): boolean {
  if (!isJsonObject(value)) return false;
  if (!isOptionalString(value.username, 1024) || !isOptionalString(value.uid, 1024)) return false;
  const { groups, extra } = value;
  if (groups !== undefined && !isStringArray(groups, 1024)) return false;
  if (extra === undefined) return true;
  if (!isJsonObject(extra)) return false;
  for (const key in extra) {
    if (!Object.hasOwn(extra, key)) continue;
    const values = extra[key];
    if (!isStringArray(values, Infinity)) return false;
  }
  return true;
}

// An index loop, not every(): a hole (no JSON makes one, but a caller's object may) is no string for zod either.
function isStringArray(value: unknown, max: number): boolean {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'string' || item.length > max) return false;
  }
  return true;
}

/** Parses AdmissionReview JSON text; throws AdmissionReviewError for text that is not JSON. */
export function parseAdmissionReviewJson(text: string): AdmissionRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AdmissionReviewError(`invalid JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  return parseAdmissionReview(value);
}

const GUARDED: ReadonlyArray<{ group: string; version: string; kind: WorkloadKind }> = [
  { group: 'apps', version: 'v1', kind: 'Deployment' },
  { group: 'apps', version: 'v1', kind: 'StatefulSet' },
  { group: 'batch', version: 'v1', kind: 'Job' },
  { group: 'batch', version: 'v1', kind: 'CronJob' },
];

/** The workload kind when the guard looks at this request (CREATE/UPDATE of the object itself), else undefined. */
export function guardedWorkloadKind(
  request: Pick<AdmissionRequest, 'kind' | 'operation' | 'subResource'>,
): WorkloadKind | undefined {
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return undefined;
  if (request.subResource) return undefined; // scale and status updates change no template
  const { group, version, kind } = request.kind;
  return GUARDED.find((g) => g.group === group && g.version === version && g.kind === kind)?.kind;
}

function requireObjectsOfGuardedRequest(request: AdmissionRequest): void {
  if (guardedWorkloadKind(request) === undefined) return;
  const kind = request.kind.kind;
  if (!isJsonObject(request.object) || !isJsonObject(request.object.metadata)) {
    throw new AdmissionReviewError(
      `invalid AdmissionReview: request.object must be a ${kind} with metadata on ${request.operation}`,
    );
  }
  if (
    request.operation === 'UPDATE' &&
    (!isJsonObject(request.oldObject) || !isJsonObject(request.oldObject.metadata))
  ) {
    throw new AdmissionReviewError(
      `invalid AdmissionReview: request.oldObject must be a ${kind} with metadata on UPDATE`,
    );
  }
}
