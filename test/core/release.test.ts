import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, parseGuardConfig } from '../../src/core/config.js';
import { componentRole, identifyRelease, mainContainer, workloadVersion } from '../../src/core/release.js';
import { chartWorkload } from '../fixtures/admission/builders.js';

describe('identifyRelease', () => {
  it.each([
    ['official', 'official-chart'],
    ['community', 'community-chart'],
    ['bitnami', 'recommended-labels'],
  ] as const)('%s chart labels', (scheme, expected) => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler', release: 'prod', scheme });
    expect(identifyRelease('Deployment', object, DEFAULT_CONFIG)).toEqual({
      release: 'prod',
      component: 'scheduler',
      scheme: expected,
    });
  });

  it('reads the pod template labels when the workload has none', () => {
    const object = chartWorkload({ kind: 'CronJob', component: 'database-cleanup' }) as {
      metadata: { labels?: unknown };
    };
    delete object.metadata.labels;
    expect(identifyRelease('CronJob', object, DEFAULT_CONFIG)?.component).toBe('database-cleanup');
  });

  it('is undefined for workloads that are not Airflow', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'nginx', scheme: 'none' });
    expect(identifyRelease('Deployment', object, DEFAULT_CONFIG)).toBeUndefined();
  });

  it('uses configured label keys for hand-written manifests', () => {
    const config = parseGuardConfig({
      labels: {
        marker: [{ key: 'corp.io/platform', value: 'airflow' }],
        release: ['corp.io/instance'],
        component: ['corp.io/role'],
      },
    });
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      scheme: 'none',
      extraLabels: { 'corp.io/platform': 'airflow', 'corp.io/instance': 'etl', 'corp.io/role': 'scheduler' },
    });
    expect(identifyRelease('Deployment', object, config)).toEqual({
      release: 'etl',
      component: 'scheduler',
      scheme: 'configured-labels',
    });
    expect(identifyRelease('Deployment', object, DEFAULT_CONFIG)).toBeUndefined();
  });
});

describe('componentRole', () => {
  it.each([
    'scheduler',
    'webserver',
    'web',
    'api-server',
    'execution-api-server',
    'triggerer',
    'dag-processor',
    'worker',
    'worker-gpu',
    'run-airflow-migrations',
    'create-user-job',
    'database-cleanup',
  ])('%s uses the metadata DB', (c) => expect(componentRole(c)).toBe('metadata-db'));
  it.each(['pgbouncer', 'statsd', 'redis', 'flower', 'airflow-cleanup-pods'])('%s does not', (c) =>
    expect(componentRole(c)).toBe('no-metadata-db'),
  );
  it('anything else is unrecognised', () => expect(componentRole('my-sidecar-thing')).toBe('unrecognised'));
});

describe('workloadVersion', () => {
  it('reads the main container, not the init container', () => {
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.1.0',
      initImage: 'apache/airflow:3.0.2',
    });
    const v = workloadVersion('Deployment', object, 'scheduler');
    expect(v.known && v.version.text).toBe('3.1.0');
    expect(v.container).toBe('scheduler');
  });

  it('finds the main container of a worker set and of Bitnami/community names', () => {
    const set = chartWorkload({
      kind: 'StatefulSet',
      component: 'worker-gpu',
      containerName: 'worker',
      version: '3.0.2',
    });
    expect(mainContainer('StatefulSet', set, 'worker-gpu')?.name).toBe('worker');
    const bitnami = chartWorkload({
      kind: 'Deployment',
      component: 'web',
      scheme: 'bitnami',
      containerName: 'airflow-web',
      image: 'bitnami/airflow:2.10.5-debian-12-r3',
    });
    const v = workloadVersion('Deployment', bitnami, 'web');
    expect(v.known && v.version.text).toBe('2.10.5');
  });

  it('prefers the Airflow image over sidecars when no container is named after the component', () => {
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      containerName: 'main',
      version: '3.0.2',
    }) as any;
    object.spec.template.spec.containers.unshift({ name: 'proxy', image: 'envoyproxy/envoy:1.30.1' });
    const v = workloadVersion('Deployment', object, 'scheduler');
    expect(v.known && v.version.text).toBe('3.0.2');
  });

  it('reads a CronJob through its jobTemplate', () => {
    const object = chartWorkload({ kind: 'CronJob', component: 'database-cleanup', version: '2.11.0' });
    const v = workloadVersion('CronJob', object, 'database-cleanup');
    expect(v.known && v.version.text).toBe('2.11.0');
  });

  it('the version annotation wins over the tag, on the workload or on its pod template', () => {
    const onWorkload = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      image: 'corp/airflow:latest',
      annotations: { 'airflow-downgrade-guard/airflow-version': '3.0.2' },
    });
    const v1 = workloadVersion('Deployment', onWorkload, 'scheduler');
    expect(v1.known && v1.source === 'annotation' && v1.version.text).toBe('3.0.2');
    const onTemplate = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.1.0',
      podAnnotations: { 'airflow-downgrade-guard/airflow-version': '3.0.3' },
    });
    const v2 = workloadVersion('Deployment', onTemplate, 'scheduler');
    expect(v2.known && v2.version.text).toBe('3.0.3');
  });

  it('an annotation that is not a version makes the version unknown instead of falling back', () => {
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.1.0',
      annotations: { 'airflow-downgrade-guard/airflow-version': '3.0.2; reboot' },
    });
    const v = workloadVersion('Deployment', object, 'scheduler');
    expect(v.known).toBe(false);
    if (!v.known) expect(v.reason).toMatch(/not an Airflow version/);
  });

  it('a moving tag is unknown', () => {
    const object = chartWorkload({ kind: 'Deployment', component: 'scheduler', image: 'apache/airflow:latest' });
    const v = workloadVersion('Deployment', object, 'scheduler');
    expect(v.known).toBe(false);
  });
});
