import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it, vi } from 'vitest';
import { installOptionsFromCli, register, runManifests } from '../../src/cli/commands/manifests.js';
import { renderInstallManifests } from '../../src/install/manifests.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = `${ROOT}bin/airflow-downgrade-guard.js`;
const built = existsSync(`${ROOT}dist/src/cli/commands/manifests.js`);

const parse = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS());

function program(): Command {
  const p = new Command('airflow-downgrade-guard')
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(p);
  return p;
}

async function runInProcess(args: string[]): Promise<{ stdout: string; error: unknown }> {
  let stdout = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  try {
    await program().parseAsync(['manifests', ...args], { from: 'user' });
    return { stdout, error: null };
  } catch (error) {
    return { stdout, error };
  } finally {
    write.mockRestore();
  }
}

describe('manifests command', () => {
  it('prints the default install as multi-document YAML', () => {
    expect(parse(runManifests({}))).toEqual(renderInstallManifests());
  });

  it('applies namespace, watched namespaces, failure policy, image and replicas', async () => {
    const { stdout, error } = await runInProcess([
      '--namespace',
      'guard',
      '--watch-namespaces',
      'airflow, airflow-2',
      '--failure-policy',
      'Ignore',
      '--image',
      'reg.local:5000/g:1',
      '--replicas',
      '3',
    ]);
    expect(error).toBeNull();
    expect(parse(stdout)).toEqual(
      renderInstallManifests({
        namespace: 'guard',
        watchNamespaces: ['airflow', 'airflow-2'],
        failurePolicy: 'Ignore',
        image: 'reg.local:5000/g:1',
        replicas: 3,
      }),
    );
  });

  it.each([
    [['--failure-policy', 'fail'], /failure policy must be Fail or Ignore/],
    [['--replicas', 'two'], /replicas must be a whole number/],
    [['--replicas', '0'], /replicas must be a whole number from 1/],
    [['--watch-namespaces', 'a,,b'], /empty entry/],
    [['--watch-namespaces', 'Airflow'], /watch namespace must be a DNS label/],
    [['--namespace', 'kube-system'], /kube-system/],
    [['--image', 'UPPER/case'], /not an image reference/],
  ])('exits 2 with a clear message for %j', async (args, message) => {
    const { stdout, error } = await runInProcess(args);
    expect(stdout).toBe('');
    expect(error).toBeInstanceOf(CommanderError);
    expect((error as CommanderError).exitCode).toBe(2);
    expect((error as CommanderError).message).toMatch(message);
  });

  it('takes resources, node placement, priority class and extra labels (the chart has the same values)', () => {
    const options = installOptionsFromCli({
      resources: '{"requests":{"cpu":"100m"}}',
      nodeSelector: 'pool=platform,zone=a',
      tolerations: '[{"key":"platform","operator":"Exists"}]',
      affinity: '{}',
      priorityClass: 'system-cluster-critical',
      labels: 'team=data',
    });
    const objects = renderInstallManifests(options);
    const pod = (objects.find((o) => o.kind === 'Deployment') as any).spec.template;
    expect(pod.spec.containers[0].resources).toEqual({ requests: { cpu: '100m' } });
    expect(pod.spec.nodeSelector).toEqual({ pool: 'platform', zone: 'a' });
    expect(pod.spec.tolerations).toEqual([{ key: 'platform', operator: 'Exists' }]);
    expect(pod.spec.affinity).toBeUndefined();
    expect(pod.spec.priorityClassName).toBe('system-cluster-critical');
    expect(pod.metadata.labels.team).toBe('data');
    for (const o of objects) expect(o.metadata.labels?.team, o.kind).toBe('data');
    expect((objects.find((o) => o.kind === 'Deployment') as any).spec.selector.matchLabels.team).toBeUndefined();
  });

  it('rejects bad placement values with one line naming them', () => {
    expect(() => installOptionsFromCli({ resources: '{"requests":{"cpu":"lots"}}' })).toThrow(
      /resources.requests must map resource names to quantities/,
    );
    expect(() => installOptionsFromCli({ tolerations: '[' })).toThrow(/--tolerations must be JSON/);
    expect(() => installOptionsFromCli({ labels: 'app.kubernetes.io/name=x' })).toThrow(
      /labels may not set app.kubernetes.io\/name/,
    );
    expect(() => installOptionsFromCli({ nodeSelector: 'novalue' })).toThrow(/--node-selector takes key=value pairs/);
    expect(() => installOptionsFromCli({ priorityClass: 'Not_A_Name' })).toThrow(
      /priority class name must be a DNS subdomain/,
    );
  });

  it('installOptionsFromCli trims the namespace list', () => {
    expect(installOptionsFromCli({ watchNamespaces: ' a ,b' }).watchNamespaces).toEqual(['a', 'b']);
  });
});

describe.skipIf(!built)('as a subprocess (bin/airflow-downgrade-guard.js)', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });

  it('manifests prints YAML that parses to the install', () => {
    const result = run(['manifests', '--watch-namespaces', 'airflow']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(parse(result.stdout)).toEqual(renderInstallManifests({ watchNamespaces: ['airflow'] }));
  });

  it('manifests exits 2 on a bad value and says why on stderr', () => {
    const result = run(['manifests', '--failure-policy', 'Maybe']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/failure policy must be Fail or Ignore/);
  });

  it('certs generate --help documents its options', () => {
    const result = run(['certs', 'generate', '--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/--out <dir>/);
    expect(result.stdout).toMatch(/--ip <address>/);
  });
});
