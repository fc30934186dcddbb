import { describe, expect, it } from 'vitest';
import {
  airflowImage,
  airflowImageVersion,
  ImageCatalog,
  resolveToVersion,
  type AirflowImage,
} from '../../../../testbed/sim/airflow/image.js';

function image(ref: string): AirflowImage {
  const known = airflowImage(ref);
  if (!known) throw new Error(`expected ${ref} to be an Airflow image`);
  return known;
}

describe('simulated image versions', () => {
  it('reads the version from Airflow tags', () => {
    expect(airflowImageVersion('apache/airflow:3.1.0')?.text).toBe('3.1.0');
    expect(airflowImageVersion('apache/airflow:3.0.2-python3.12')?.text).toBe('3.0.2');
    expect(airflowImageVersion('apache/airflow:slim-3.0.2')?.text).toBe('3.0.2');
    expect(airflowImageVersion('registry.local:5000/airflow:2.10.5')?.text).toBe('2.10.5');
    expect(airflowImageVersion('bitnami/airflow:2.10.5-debian-12-r3')?.text).toBe('2.10.5');
  });

  it('treats pgbouncer, moving tags and other images as not Airflow', () => {
    for (const ref of [
      'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1',
      'apache/airflow:latest',
      'busybox:1.36',
      'redis:7.2',
      'quay.io/prometheus/statsd-exporter:v0.28.0',
      undefined,
    ]) {
      expect(airflowImage(ref)).toBeUndefined();
    }
  });

  it('knows its own head and the chain up to it (Airflow 3 from 2.7.0 on)', () => {
    const v310 = image('apache/airflow:3.1.0');
    expect(v310.head).toBe('cc92b33c6709');
    // The first 2.7.0 migration (testbed/sim/airflow/airflow-migrations.json), then every revision in order.
    expect(v310.chain[0]).toBe('937cbd173ca1');
    expect(v310.chain).toContain('405de8318b3a');
    expect(v310.chain).not.toContain('c804e5c76e3e');
    expect(v310.chain.at(-1)).toBe('cc92b33c6709');
    expect(v310.chain.indexOf('fe199e1abd77') - v310.chain.indexOf('29ce7909c52b')).toBe(1);
    expect(v310.chain.indexOf('cc92b33c6709') - v310.chain.indexOf('fe199e1abd77')).toBe(16);
    expect(image('apache/airflow:3.0.2').head).toBe('29ce7909c52b');
    expect(image('apache/airflow:3.1.7').head).toBe('cc92b33c6709');
    const v2 = image('apache/airflow:2.10.5');
    expect(v2.head).toBe('5f2621c13b39');
    expect(v2.chain[0]).toBe('cf5dc11e79ad');
    expect(v2.chain).toContain('e959f08ac86c');
    expect(v2.chain).not.toContain('29ce7909c52b');
  });

  it('prints the heads map up to its own version (3.2+ adds the squashed 2.6.2 key)', () => {
    const map = image('apache/airflow:3.0.3').headsMap;
    expect(Object.keys(map)[0]).toBe('2.7.0');
    expect(Object.keys(map).at(-1)).toBe('3.0.3');
    expect(map['3.1.0']).toBeUndefined();
    expect(image('apache/airflow:3.2.0').headsMap['2.6.2']).toBe('4bc4d934e2bc');
    expect(image('apache/airflow:3.1.8').headsMap['2.6.2']).toBeUndefined();
    expect(image('apache/airflow:2.9.3').headsMap['2.0.0']).toBe('e959f08ac86c');
  });

  it('takes the version an image catalog declares in its labels, over its tag', () => {
    const catalog = new ImageCatalog();
    catalog.declare('corp/airflow:build-4711', { 'org.apache.airflow.version': '2.9.3' });
    catalog.declare('corp/airflow:rel-agnostic-airflow-main-2.9.3', { 'org.apache.airflow.version': '2.9.2' });
    expect(airflowImage('corp/airflow:build-4711', catalog)?.head).toBe('686269002441');
    expect(airflowImageVersion('corp/airflow:rel-agnostic-airflow-main-2.9.3', catalog)?.text).toBe('2.9.2');
    expect(airflowImage('corp/airflow:build-4711')).toBeUndefined();
  });

  it('a release candidate knows the schema of its release', () => {
    expect(image('apache/airflow:3.1.0rc1').head).toBe('cc92b33c6709');
  });
});

describe('--to-version resolution by the running image', () => {
  it('Airflow 3.1+: head of the greatest listed version <= V', () => {
    const v310 = image('apache/airflow:3.1.0');
    expect(resolveToVersion(v310, '3.0.2')).toBe('29ce7909c52b');
    expect(resolveToVersion(v310, '3.0.6')).toBe('fe199e1abd77');
    expect(resolveToVersion(v310, '2.11.0')).toBe('5f2621c13b39');
    expect(resolveToVersion(v310, '2.7.3')).toBe('405de8318b3a');
    expect(resolveToVersion(v310, '3.9.0')).toBe('cc92b33c6709');
  });

  it('Airflow 3.1+: non-numeric or unlisted versions are not supported', () => {
    const v310 = image('apache/airflow:3.1.0');
    expect(resolveToVersion(v310, '3.1.0rc1')).toBeUndefined();
    expect(resolveToVersion(v310, '3.0.2.post1')).toBeUndefined();
    expect(resolveToVersion(v310, 'latest')).toBeUndefined();
    expect(resolveToVersion(v310, '2.6.3')).toBeUndefined();
  });

  it('older images step back through patch numbers within the same minor only', () => {
    const v2105 = image('apache/airflow:2.10.5');
    expect(resolveToVersion(v2105, '2.9.3')).toBe('686269002441');
    expect(resolveToVersion(v2105, '2.8.4')).toBe('88344c1d9134');
    expect(resolveToVersion(v2105, '2.10.0')).toBe('22ed7efa9da2');
    expect(resolveToVersion(v2105, '2.11.0')).toBeUndefined();
    expect(resolveToVersion(v2105, '2.9.12')).toBeUndefined(); // ten patch steps is the limit
    expect(resolveToVersion(v2105, '2.9.11')).toBe('686269002441');
    expect(resolveToVersion(v2105, '2.9.3rc1')).toBeUndefined();
    const v302 = image('apache/airflow:3.0.3');
    expect(resolveToVersion(v302, '3.0.2')).toBe('29ce7909c52b');
    expect(resolveToVersion(v302, '2.11.0')).toBeUndefined();
  });
});

describe('a simulated image newer than the known migration chain', () => {
  it('carries its own migrations and heads map past the chain', () => {
    const catalog = new ImageCatalog();
    catalog.declare('registry.local/airflow:build-9', { 'org.apache.airflow.version': '3.4.0' }, [
      'aaaa0001',
      'aaaa0002',
    ]);
    const future = airflowImage('registry.local/airflow:build-9', catalog)!;
    expect(future.head).toBe('aaaa0002');
    expect(future.chain.slice(-3)).toEqual(['d2f4e1b3c5a7', 'aaaa0001', 'aaaa0002']);
    expect(future.headsMap['3.4.0']).toBe('aaaa0002');
    expect(future.headsMap['3.3.0']).toBe('d2f4e1b3c5a7');
    catalog.declare('registry.local/airflow:old', { 'org.apache.airflow.version': '3.3.0' }, ['aaaa0001']);
    expect(() => airflowImage('registry.local/airflow:old', catalog)).toThrow(/not newer than 3.3.0/);
  });

  it('an image two releases past the chain knows the migrations and head of the one in between', () => {
    const catalog = new ImageCatalog();
    catalog.declare(
      'registry.local/airflow:build-10',
      { 'org.apache.airflow.version': '3.5.0' },
      { '3.5.0': ['bbbb0001'], '3.4.0': ['aaaa0001', 'aaaa0002'] },
    );
    const newer = airflowImage('registry.local/airflow:build-10', catalog)!;
    expect(newer.head).toBe('bbbb0001');
    expect(newer.chain.slice(-4)).toEqual(['d2f4e1b3c5a7', 'aaaa0001', 'aaaa0002', 'bbbb0001']);
    expect(newer.headsMap).toMatchObject({ '3.3.0': 'd2f4e1b3c5a7', '3.4.0': 'aaaa0002', '3.5.0': 'bbbb0001' });
    expect(newer.releaseOfRevision.get('aaaa0001')).toBe('3.4.0');
    catalog.declare('registry.local/airflow:bad', { 'org.apache.airflow.version': '3.4.0' }, { '3.5.0': ['x1'] });
    expect(() => airflowImage('registry.local/airflow:bad', catalog)).toThrow(/3.5.0, newer than its own 3.4.0/);
  });
});
