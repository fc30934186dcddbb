import { describe, expect, it } from 'vitest';
import { parseImageReference, versionFromImage } from '../../src/core/images.js';

describe('parseImageReference', () => {
  it.each([
    ['apache/airflow:3.0.2', { repository: 'apache/airflow', tag: '3.0.2' }],
    ['registry.local:5000/airflow:3.0.2', { registry: 'registry.local:5000', repository: 'airflow', tag: '3.0.2' }],
    ['localhost/team/airflow:2.10.5', { registry: 'localhost', repository: 'team/airflow', tag: '2.10.5' }],
    [
      'docker.io/bitnami/airflow:2.10.5-debian-12-r3',
      { registry: 'docker.io', repository: 'bitnami/airflow', tag: '2.10.5-debian-12-r3' },
    ],
    [
      `apache/airflow:3.0.2@sha256:${'a'.repeat(64)}`,
      { repository: 'apache/airflow', tag: '3.0.2', digest: `sha256:${'a'.repeat(64)}` },
    ],
    [`apache/airflow@sha256:${'b'.repeat(64)}`, { repository: 'apache/airflow', digest: `sha256:${'b'.repeat(64)}` }],
    ['airflow', { repository: 'airflow' }],
  ])('%s', (text, expected) => {
    expect(parseImageReference(text)).toEqual(expected);
  });

  it.each([
    '',
    'Apache/Airflow:3.0.2',
    'apache/airflow:3.0.2;rm -rf /',
    'apache/airflow:$(id)',
    'apache/airflow@sha256:short',
    'a b:1',
    'x'.repeat(600),
  ])('rejects %j', (text) => {
    expect(parseImageReference(text)).toBeUndefined();
  });
});

describe('versionFromImage', () => {
  it.each([
    ['apache/airflow:3.0.2', '3.0.2'],
    ['apache/airflow:3.0.2-python3.12', '3.0.2'],
    ['apache/airflow:slim-3.0.2', '3.0.2'],
    ['apache/airflow:slim-3.0.2-python3.11', '3.0.2'],
    ['apache/airflow:2.10.5', '2.10.5'],
    ['bitnami/airflow:2.10.5-debian-12-r3', '2.10.5'],
    ['apache/airflow:3.1.0rc1', '3.1.0rc1'],
    ['registry.local:5000/airflow:3.0.2', '3.0.2'],
    ['registry.local:5000/data/airflow-custom:3.1.0-python3.12', '3.1.0'],
    [`apache/airflow:3.0.2@sha256:${'c'.repeat(64)}`, '3.0.2'],
    [`ghcr.io/corp/airflow:slim-2.11.0@sha256:${'d'.repeat(64)}`, '2.11.0'],
  ])('%s -> %s', (image, version) => {
    const result = versionFromImage(image);
    expect(result.known && result.version.text).toBe(version);
  });

  it.each([
    ['apache/airflow:latest', /moving tag/],
    ['apache/airflow:slim-latest', /moving tag/],
    ['apache/airflow:latest-python3.12', /moving tag/],
    ['apache/airflow', /no tag/],
    [`apache/airflow@sha256:${'e'.repeat(64)}`, /pinned by digest only/],
    ['apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1', /pgbouncer/],
    ['apache/airflow:airflow-pgbouncer-exporter-2025.03.05-0.18.0', /pgbouncer/],
    ['corp/airflow:main-20250601', /does not name an Airflow version/],
    ['corp/airflow:3.0', /does not name an Airflow version/],
    ['not a reference', /not a valid image reference/],
  ])('%s is unknown', (image, reason) => {
    const result = versionFromImage(image);
    expect(result.known).toBe(false);
    if (!result.known) expect(result.reason).toMatch(reason);
  });

  it('keeps control characters out of reasons', () => {
    const result = versionFromImage('apache/airflow:3.0.2\n\u001b[31m');
    expect(result.known).toBe(false);
    if (!result.known) expect(result.reason).not.toMatch(/[\n\u001b]/);
  });
});
