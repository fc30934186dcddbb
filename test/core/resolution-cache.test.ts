import { describe, expect, it } from 'vitest';
import { ResolutionCache } from '../../src/core/resolution-cache.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const OTHER = `sha256:${'b'.repeat(64)}`;

describe('ResolutionCache', () => {
  it('a tag resolves through its digest until the TTL ends; the digest stays known', () => {
    const cache = new ResolutionCache(1000);
    cache.set('registry.corp/airflow:build-4711', { version: '2.9.3', digest: DIGEST }, 0);
    expect(cache.get('registry.corp/airflow:build-4711', 999)).toBe('2.9.3');
    expect(cache.get('registry.corp/airflow:build-4711', 1000)).toBeUndefined();
    // Pinned by the same digest: immutable, known whatever tag led to it.
    expect(cache.get(`registry.corp/airflow@${DIGEST}`, 10_000_000)).toBe('2.9.3');
    expect(cache.get(`registry.corp/airflow:other@${DIGEST}`, 10_000_000)).toBe('2.9.3');
    expect(cache.get(`registry.corp/airflow@${OTHER}`, 0)).toBeUndefined();
  });

  it('a moving tag is re-resolved after the TTL, and then answers with its new digest', () => {
    const cache = new ResolutionCache(1000);
    cache.set('registry.corp/airflow:latest', { version: '2.9.3', digest: DIGEST }, 0);
    cache.set('registry.corp/airflow:latest', { version: '2.8.4', digest: OTHER }, 1500);
    expect(cache.get('registry.corp/airflow:latest', 1600)).toBe('2.8.4');
    expect(cache.get(`registry.corp/airflow@${DIGEST}`, 1600)).toBe('2.9.3');
  });

  it('a probe pod result without a digest is kept for the TTL', () => {
    const cache = new ResolutionCache(1000);
    cache.set('registry.corp/airflow:build-1', { version: '3.0.2' }, 0);
    expect(cache.get('registry.corp/airflow:build-1', 500)).toBe('3.0.2');
    expect(cache.get('registry.corp/airflow:build-1', 1000)).toBeUndefined();
  });

  it('the snapshot for admission holds fresh entries only and is reused until something changes or expires', () => {
    const cache = new ResolutionCache(1000);
    cache.set('registry.corp/airflow:build-1', { version: '3.0.2' }, 0);
    cache.set(`registry.corp/airflow@${DIGEST}`, { version: '2.9.3' }, 0);
    const first = cache.snapshot(10);
    expect(first).toEqual({ 'registry.corp/airflow:build-1': '3.0.2', [`registry.corp/airflow@${DIGEST}`]: '2.9.3' });
    expect(cache.snapshot(20)).toBe(first);
    expect(cache.snapshot(1000)).toEqual({ [`registry.corp/airflow@${DIGEST}`]: '2.9.3' });
    cache.set('registry.corp/airflow:build-2', { version: '3.1.0' }, 1000);
    expect(cache.snapshot(1001)).toMatchObject({ 'registry.corp/airflow:build-2': '3.1.0' });
  });

  it('refuses what is not an image reference or an Airflow version, and stays bounded', () => {
    const cache = new ResolutionCache(1000, 2);
    expect(() => cache.set('Not An Image', { version: '3.0.2' }, 0)).toThrow(/is not an image reference/);
    expect(() => cache.set('corp/airflow:x', { version: 'v3' }, 0)).toThrow(/is not an Airflow version/);
    expect(() => new ResolutionCache(-1)).toThrow(RangeError);
    for (const n of [1, 2, 3]) cache.set(`corp/airflow:b${n}`, { version: '3.0.2' }, 0);
    expect(cache.get('corp/airflow:b1', 0)).toBeUndefined();
    expect(cache.get('corp/airflow:b3', 0)).toBe('3.0.2');
  });
});
