// Errors as the real API server returns them: metav1.Status bodies with the same wording.
import type { ResourceType } from '../types.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

export class ApiError extends Error {
  constructor(readonly status: StatusBody) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
  }
  get code(): number {
    return this.status.code;
  }
}

export function statusBody(code: number, reason: string, message: string, details?: StatusBody['details']): StatusBody {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) body.details = details;
  return body;
}

export function apiError(code: number, reason: string, message: string, details?: StatusBody['details']): ApiError {
  return new ApiError(statusBody(code, reason, message, details));
}

/** "deployments.apps" / "pods": how the real server names a resource in messages. */
export function qualifiedResource(type: Pick<ResourceType, 'plural' | 'group'>): string {
  return type.group ? `${type.plural}.${type.group}` : type.plural;
}

function resourceDetails(
  type: Pick<ResourceType, 'plural' | 'group'>,
  name?: string,
): NonNullable<StatusBody['details']> {
  const details: NonNullable<StatusBody['details']> = {};
  if (name !== undefined) details.name = name;
  if (type.group) details.group = type.group;
  details.kind = type.plural;
  return details;
}

export function notFound(type: Pick<ResourceType, 'plural' | 'group'>, name: string): ApiError {
  return apiError(404, 'NotFound', `${qualifiedResource(type)} "${name}" not found`, resourceDetails(type, name));
}

export function alreadyExists(type: Pick<ResourceType, 'plural' | 'group'>, name: string): ApiError {
  return apiError(
    409,
    'AlreadyExists',
    `${qualifiedResource(type)} "${name}" already exists`,
    resourceDetails(type, name),
  );
}

export function conflict(type: Pick<ResourceType, 'plural' | 'group'>, name: string, why: string): ApiError {
  return apiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": ${why}`,
    resourceDetails(type, name),
  );
}

export function badRequest(message: string): ApiError {
  return apiError(400, 'BadRequest', message);
}

export function invalid(
  type: ResourceType,
  name: string,
  causes: Array<{ field: string; message: string; reason?: string }>,
): ApiError {
  const kind = type.group ? `${type.kind}.${type.group}` : type.kind;
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  const details: NonNullable<StatusBody['details']> = {
    name,
    kind: type.kind,
    causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })),
  };
  if (type.group) details.group = type.group;
  return apiError(422, 'Invalid', `${kind} "${name}" is invalid: ${text}`, details);
}

export function internalError(message: string): ApiError {
  return apiError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

export function methodNotAllowed(): ApiError {
  return apiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function notFoundPath(): ApiError {
  return apiError(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function unsupportedMediaType(contentType: string): ApiError {
  return apiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType})`,
  );
}
