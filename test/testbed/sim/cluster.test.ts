// The composed simulated cluster (API server + controllers + Airflow runtime + real Postgres)
// driven by kubectl: rollouts kubectl can watch to completion, pause/resume, exec into Airflow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeRest } from '../../../src/k8s/rest.js';
import { startSimCluster, type SimCluster } from '../../../testbed/sim/cluster.js';
import { RESOURCES } from '../../../testbed/sim/resources.js';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.js';
import { CHART_MANIFESTS, kubectlFor, removeKubectlDirs, type Kubectl } from './support.js';

describe('the simulated cluster under kubectl', () => {
  let db: TestDatabase;
  let cluster: SimCluster;
  let kubectl: Kubectl;

  beforeAll(async () => {
    db = await createTestDatabase('sim_cluster');
    cluster = await startSimCluster({
      databaseUrl: db.url,
      podStartDelayMs: 30,
      controllers: { readyDelayMs: 30, probeIntervalMs: 30, graceUnitMs: 10, resyncMs: 300, crashLoopBackoffMs: 100 },
      runtime: { stepDurationMs: 1, checkIntervalMs: 50, readyDelayMs: 30, secondMs: 20, taskDurationMs: 50 },
    });
    kubectl = kubectlFor(cluster.api.kubeconfig());
  });

  afterAll(async () => {
    removeKubectlDirs();
    await cluster?.stop();
    await db?.drop();
  });

  const ok = async (args: string[], input?: string) => {
    const result = await kubectl(args, input === undefined ? { timeoutMs: 40_000 } : { input, timeoutMs: 40_000 });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  };

  it('rolls the chart out: migration job, then deployments kubectl sees complete', async () => {
    await ok(['apply', '-f', '-'], CHART_MANIFESTS);
    await ok([
      '-n',
      'airflow',
      'wait',
      '--for=condition=complete',
      'job/airflow-run-airflow-migrations',
      '--timeout=30s',
    ]);
    expect(await ok(['-n', 'airflow', 'rollout', 'status', 'deploy/airflow-scheduler', '--timeout=30s'])).toContain(
      'successfully rolled out',
    );
    expect(await ok(['-n', 'airflow', 'rollout', 'status', 'sts/airflow-triggerer', '--timeout=30s'])).toContain(
      'roll out complete',
    );
    const version = await ok(['-n', 'airflow', 'exec', 'deploy/airflow-api-server', '--', 'airflow', 'version']);
    expect(version.trim()).toBe('3.1.0');
  });

  it('holds a paused rollout until it is resumed', async () => {
    await ok(['-n', 'airflow', 'rollout', 'pause', 'deploy/airflow-api-server']);
    await ok(['-n', 'airflow', 'set', 'env', 'deploy/airflow-api-server', 'AIRFLOW__API__WORKERS=2']);
    const held = await kubectl(['-n', 'airflow', 'rollout', 'status', 'deploy/airflow-api-server', '--timeout=1s']);
    expect(held.code).not.toBe(0);
    await ok(['-n', 'airflow', 'rollout', 'resume', 'deploy/airflow-api-server']);
    expect(await ok(['-n', 'airflow', 'rollout', 'status', 'deploy/airflow-api-server', '--timeout=30s'])).toContain(
      'successfully rolled out',
    );
    const pods = JSON.parse(
      await ok([
        '-n',
        'airflow',
        'get',
        'pods',
        '-l',
        'component=api-server',
        '--field-selector=status.phase=Running',
        '-o',
        'json',
      ]),
    );
    expect(
      pods.items.some((p: any) => p.spec.containers[0].env?.some((e: any) => e.name === 'AIRFLOW__API__WORKERS')),
    ).toBe(true);
  });

  it('deletes a deployment and garbage-collects its ReplicaSets and pods', async () => {
    await ok(['-n', 'airflow', 'delete', 'deploy', 'airflow-api-server']);
    await ok(['-n', 'airflow', 'wait', '--for=delete', 'pod', '-l', 'component=api-server', '--timeout=30s']);
    expect(
      cluster.store.list(RESOURCES.replicasets, 'airflow', (rs) => rs.metadata.labels?.component === 'api-server')
        .items,
    ).toHaveLength(0);
  });

  it('a Job deleted without a propagation policy orphans its pods (batch/v1 default), as on a real API server', async () => {
    const jobPods = () =>
      cluster.store.list(
        RESOURCES.pods,
        'airflow',
        (p) => p.metadata.labels?.['job-name'] === 'airflow-run-airflow-migrations',
      ).items;
    expect(jobPods().length).toBeGreaterThan(0);
    const kc = new KubeConfig();
    kc.loadFromString(cluster.api.kubeconfig());
    const rest = new KubeRest(kc);
    await rest.request('DELETE', '/apis/batch/v1/namespaces/airflow/jobs/airflow-run-airflow-migrations');
    rest.close();
    expect(cluster.store.get(RESOURCES.jobs, 'airflow', 'airflow-run-airflow-migrations')).toBeUndefined();
    const orphans = jobPods();
    expect(orphans.length).toBeGreaterThan(0);
    for (const pod of orphans) expect(pod.metadata.ownerReferences ?? []).toEqual([]);
  });
});
