// Decision -> AdmissionReview v1 response, exactly what the webhook sends and `review` prints.
import type { Decision } from './decide.js';
import type { JsonPatchOperation } from './hold.js';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch array. */
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string };
}

export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

// The API server may truncate single warnings over 256 characters and drops warnings beyond 4096
// characters in total; HTTP Warning headers also carry printable ASCII best.
export const MAX_WARNING_LENGTH = 256;
export const MAX_WARNINGS_TOTAL = 4096;

// A quoted value (image reference, tag, pod name) may be long and usually precedes the reason:
// shortened in the middle, harder if needed, so the reason after it stays within the length.
const COMPACTIONS = [
  { longerThan: 32, head: 16, tail: 10 },
  { longerThan: 20, head: 10, tail: 6 },
];

function compactQuoted(text: string, c: (typeof COMPACTIONS)[number]): string {
  const long = new RegExp(`(['"])([^'"]{${c.longerThan + 1},})\\1`, 'g');
  return text.replace(
    long,
    (_match, quote: string, value: string) => `${quote}${value.slice(0, c.head)}...${value.slice(-c.tail)}${quote}`,
  );
}

function cleanWarning(text: string): string {
  let ascii = text.replace(/[^\x20-\x7e]/g, ' ');
  for (const c of COMPACTIONS) if (ascii.length > MAX_WARNING_LENGTH) ascii = compactQuoted(ascii, c);
  return ascii.length > MAX_WARNING_LENGTH ? `${ascii.slice(0, MAX_WARNING_LENGTH - 3)}...` : ascii;
}

export function boundedWarnings(warnings: readonly string[]): string[] {
  const out: string[] = [];
  let total = 0;
  for (const w of warnings) {
    const line = cleanWarning(w);
    if (total + line.length > MAX_WARNINGS_TOTAL) break;
    out.push(line);
    total += line.length;
  }
  return out;
}

export function encodePatch(patch: readonly JsonPatchOperation[]): string {
  return Buffer.from(JSON.stringify(patch), 'utf8').toString('base64');
}

/** patch and patchType only when there is a patch; warnings only when there are any; status only when denied. */
export function toAdmissionResponse(uid: string, decision: Decision): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid, allowed: decision.allowed };
  if (decision.allowed && decision.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = encodePatch(decision.patch);
  }
  const warnings = boundedWarnings(decision.warnings);
  if (warnings.length > 0) response.warnings = warnings;
  if (!decision.allowed) {
    const denial = decision.denial ?? { code: 403, message: decision.reason };
    response.status = { code: denial.code, message: denial.message };
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

/** Decodes a response's patch (for tests, `review` readers and the audit log). */
export function decodePatch(response: AdmissionResponse): JsonPatchOperation[] {
  if (response.patch === undefined) return [];
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as JsonPatchOperation[];
}
