import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingClusterConfig, SERVICE_ACCOUNT_TOKEN } from '../../src/k8s/rest.js';

const root = new URL('../../', import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), 'adg-kubeconfig-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('no cluster configuration at all', () => {
  const nothing = () => false;

  it('names every place it looked', () => {
    expect(missingClusterConfig({}, '/home/me', nothing)).toBe(
      'no cluster configuration found; looked at --kubeconfig (not given), KUBECONFIG (not set), /home/me/.kube/config (does not exist), in-cluster (KUBERNETES_SERVICE_HOST is not set)',
    );
    expect(missingClusterConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, '/home/me', nothing)).toMatch(
      new RegExp(`in-cluster \\(KUBERNETES_SERVICE_HOST is set but ${SERVICE_ACCOUNT_TOKEN} does not exist\\)$`),
    );
  });

  it('is not reported when any source exists', () => {
    expect(missingClusterConfig({ KUBECONFIG: '/somewhere' }, '/home/me', nothing)).toBeUndefined();
    expect(missingClusterConfig({}, '/home/me', (p) => p === '/home/me/.kube/config')).toBeUndefined();
    expect(
      missingClusterConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, '/home/me', (p) => p === SERVICE_ACCOUNT_TOKEN),
    ).toBeUndefined();
  });

  it.each([['status'], ['plan', '-f', '-'], ['wait', '--release', 'airflow/airflow']])(
    '`%s` says so instead of blaming localhost:8080 (exit 1)',
    (...args) => {
      const env = { ...process.env, HOME: home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
      const result = spawnSync(process.execPath, [join(root, 'bin/airflow-downgrade-guard.js'), ...args], {
        cwd: root,
        env,
        input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n',
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        `error: no cluster configuration found; looked at --kubeconfig (not given), KUBECONFIG (not set), ${home}/.kube/config (does not exist), in-cluster (KUBERNETES_SERVICE_HOST is not set)\n`,
      );
    },
  );
});
