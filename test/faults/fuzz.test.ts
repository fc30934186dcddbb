// Hostile AdmissionReviews, the fast seed (npm test): ≈2 000 decisions and a few hundred HTTP requests.
import { afterAll, describe, expect, it } from 'vitest';
import { fuzzHttp, fuzzReview } from './fuzz-cases.js';
import { checkReview, SMUGGLED } from './fuzz.js';
import { versionChange } from '../fixtures/admission/builders.js';
import { ANNOTATIONS } from '../../src/core/config.js';
import { saveCounts } from './support.js';

const counts: Record<string, number> = {};
afterAll(() => saveCounts('fuzz-fast', counts));

describe('AdmissionReview fuzzing (fast seed)', () => {
  it('2 000 hostile reviews: each answered or cleanly rejected, nothing unvalidated in a hold or argv', () => {
    const c = fuzzReview(2000, 42);
    Object.assign(counts, {
      'review cases': c.cases,
      'review answered': c.answered,
      'review rejected (400)': c.rejected,
    });
    expect(c.cases).toBe(2000);
    expect(c.answered).toBeGreaterThan(200);
  });

  it('300 hostile bodies over HTTP: 200 with a valid response or 4xx with a message', async () => {
    const c = await fuzzHttp(300, 7);
    Object.assign(counts, { 'http cases': c.cases, 'http 200': c.answered, 'http 4xx': c.status4xx });
    expect(c.cases).toBeGreaterThan(250);
  });

  it.each(SMUGGLED)('a downgrade to %j (tag and annotation) opens no operation with it', (smuggled) => {
    for (const place of ['tag', 'annotation'] as const) {
      const review = versionChange({ kind: 'Deployment', component: 'scheduler' }, '3.1.0', '3.0.2') as any;
      if (place === 'tag') review.request.object.spec.template.spec.containers[0].image = `apache/airflow:${smuggled}`;
      else review.request.object.metadata.annotations = { [ANNOTATIONS.airflowVersion]: smuggled };
      expect(() => checkReview(review)).not.toThrow();
    }
  });
});
