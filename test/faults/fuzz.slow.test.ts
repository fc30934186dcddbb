// Hostile AdmissionReviews, the full run (`npm run test:faults`): 10^5 decisions, 5 000 HTTP
// requests, huge bodies. The fast seed is fuzz.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { BODY_LIMIT_BYTES } from '../../src/webhook/app.js';
import { versionChange } from '../fixtures/admission/builders.js';
import { fuzzApp, fuzzHttp, fuzzReview } from './fuzz-cases.js';
import { printReport, saveCounts } from './support.js';

const counts: Record<string, number> = {};
afterAll(() => {
  saveCounts('fuzz-full', counts);
  printReport();
});

describe('AdmissionReview fuzzing (full)', () => {
  it('100 000 hostile reviews: each answered or cleanly rejected, nothing unvalidated in a hold or argv', () => {
    const c = fuzzReview(100_000);
    Object.assign(counts, {
      'review cases': c.cases,
      'review answered': c.answered,
      'review rejected (400)': c.rejected,
    });
    expect(c.cases).toBe(100_000);
  });

  it('5 000 hostile bodies over HTTP', async () => {
    const c = await fuzzHttp(5000);
    Object.assign(counts, { 'http cases': c.cases, 'http 200': c.answered, 'http 4xx': c.status4xx });
    expect(c.cases).toBeGreaterThan(4500);
  });

  it('huge bodies: over the limit -> 413 with a message; just under it -> an answer', async () => {
    const app = fuzzApp();
    const review = versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2') as {
      request: { object: { metadata: { annotations?: Record<string, string> } } };
    };
    const big = structuredClone(review);
    big.request.object.metadata.annotations = { filler: 'x'.repeat(BODY_LIMIT_BYTES + 10) };
    const over = await request(app).post('/mutate').set('content-type', 'application/json').send(JSON.stringify(big));
    expect(over.status).toBe(413);
    expect(over.body.error).toMatch(/limit/);
    const under = structuredClone(review);
    under.request.object.metadata.annotations = { filler: 'x'.repeat(BODY_LIMIT_BYTES - 20_000) };
    const ok = await request(app).post('/mutate').set('content-type', 'application/json').send(JSON.stringify(under));
    expect([200, 400]).toContain(ok.status);
    counts['huge bodies'] = 2;
  });
});
