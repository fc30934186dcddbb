// The pinned kubectl as a child process against a kubeconfig file; asynchronous, because a node
// agent may run in the test's event loop. Never throws on a non-zero exit.
import { execFile } from 'node:child_process';
import { KUBECTL_ENV } from '../support/kube-tools-env.js';

export interface KubectlRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectlAt(kubeconfigPath: string): (args: string[], input?: string) => Promise<KubectlRun> {
  return (args, input = '') => {
    const binary = process.env[KUBECTL_ENV];
    if (!binary) throw new Error(`${KUBECTL_ENV} is not set (vitest global setup)`);
    return new Promise((resolve) => {
      const child = execFile(
        binary,
        ['--kubeconfig', kubeconfigPath, ...args],
        { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) =>
          resolve({
            code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
            stdout: String(stdout),
            stderr: String(stderr),
          }),
      );
      child.stdin?.end(input);
    });
  };
}
