// One path from AdmissionReview to response, shared by the webhook and the offline `review`
// command so both answer the same request identically.
import { parseAdmissionReview, type AdmissionRequest } from './admission.js';
import type { GuardConfig } from './config.js';
import { decide, type Decision, type ReleaseState } from './decide.js';
import { releaseOf } from './release.js';
import { toAdmissionResponse, type AdmissionReviewResponse } from './response.js';

export interface ReviewResult {
  request: AdmissionRequest;
  decision: Decision;
  response: AdmissionReviewResponse;
}

export function reviewRequest(request: AdmissionRequest, state: ReleaseState, config: GuardConfig): ReviewResult {
  const decision = decide(request, state, config);
  return { request, decision, response: toAdmissionResponse(request.uid, decision) };
}

/**
 * Validates and decides. `stateFor` gets the namespace and release when the object is an Airflow
 * workload (so the caller only looks up state it needs).
 */
export function reviewAdmission(
  input: unknown,
  stateFor: (namespace: string, release: string) => ReleaseState,
  config: GuardConfig,
): ReviewResult {
  const request = parseAdmissionReview(input);
  const release = releaseOf(request, config);
  const state = release === undefined ? {} : stateFor(request.namespace, release);
  return reviewRequest(request, state, config);
}
