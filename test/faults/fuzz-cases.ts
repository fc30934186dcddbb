// The fuzz runs, shared by the fast (npm test) and full (test:faults) files; only the counts differ.
import fc from 'fast-check';
import request from 'supertest';
import { expect } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { createAdmissionApp } from '../../src/webhook/app.js';
import { checkResponse, checkReview, hostileReview, rawBodies, RUNNING_STATE, type Answer } from './fuzz.js';

export interface FuzzCounts {
  cases: number;
  answered: number;
  rejected: number;
}

/** reviewAdmission on `numRuns` hostile inputs: every one answered or cleanly rejected. */
export function fuzzReview(numRuns: number, seed?: number): FuzzCounts {
  const counts = { cases: 0, answered: 0, rejected: 0 };
  fc.assert(
    fc.property(hostileReview, (input) => {
      const answer: Answer = checkReview(input);
      counts.cases++;
      counts[answer]++;
    }),
    { numRuns, ...(seed !== undefined ? { seed } : {}) },
  );
  return counts;
}

export function fuzzApp() {
  return createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => RUNNING_STATE });
}

/** The same through HTTP: a 200 with a valid AdmissionReview response, or a 4xx with a message. */
export async function fuzzHttp(numRuns: number, seed?: number): Promise<FuzzCounts & { status4xx: number }> {
  const app = fuzzApp();
  const counts = { cases: 0, answered: 0, rejected: 0, status4xx: 0 };
  const check = async (body: string): Promise<void> => {
    const res = await request(app).post('/mutate').set('content-type', 'application/json').send(body);
    counts.cases++;
    if (res.status === 200) {
      counts.answered++;
      checkResponse({ response: res.body, request: { uid: res.body?.response?.uid }, decision: {} } as never);
    } else {
      expect(res.status, body.slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(res.status, body.slice(0, 200)).toBeLessThan(500);
      expect(typeof res.body.error).toBe('string');
      expect(res.body.error.length).toBeGreaterThan(0);
      counts.rejected++;
      counts.status4xx++;
    }
  };
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        hostileReview.map((r) => safeStringify(r)),
        rawBodies,
      ),
      async (body) => {
        if (body !== undefined) await check(body);
      },
    ),
    { numRuns, ...(seed !== undefined ? { seed } : {}) },
  );
  return counts;
}

function safeStringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined; // bigint, cycles: not something an API server can send
  }
}
