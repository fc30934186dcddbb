// The test driver for real Helm: `helmFor(3|4, kubeconfig)` runs the pinned Helm 3.17.2 or 4.1.4
// (extracted by the global setup, see kube-tools.ts) against one cluster, with its own kubeconfig
// file and its own HELM_CONFIG_HOME/HELM_CACHE_HOME/HELM_DATA_HOME in one temporary directory, so
// no test reads or writes the machine's Helm state. `cleanup()` (in afterAll) removes it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELM3_ENV, HELM4_ENV } from './kube-tools-env.js';

export type HelmMajor = 3 | 4;

export const HELM_MAJORS: readonly HelmMajor[] = [3, 4];

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the command. */
  ms: number;
}

export interface HelmRunOptions {
  /** Written to Helm's stdin (e.g. `-f -` values). */
  input?: string;
  /** Kill Helm after this long (default 6 min, above `--timeout 5m`). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Helm {
  major: HelmMajor;
  binary: string;
  /** The kubeconfig file Helm is pointed at (KUBECONFIG), e.g. for a kubectl of the same test. */
  kubeconfigPath: string;
  /** Runs Helm; never throws on a non-zero exit. */
  run(args: string[], options?: HelmRunOptions): Promise<HelmResult>;
  /** Runs Helm and throws (with its stderr) unless it exits 0. */
  ok(args: string[], options?: HelmRunOptions): Promise<HelmResult>;
  /** `helm template` output (YAML stream). */
  template(args: string[], options?: HelmRunOptions): Promise<string>;
  /** `helm history RELEASE -n NS -o json`. */
  history(
    release: string,
    namespace: string,
  ): Promise<Array<{ revision: number; status: string; description: string; chart: string; app_version: string }>>;
  /** Removes the temporary directory (kubeconfig, Helm homes). */
  cleanup(): void;
}

export function helmBinary(major: HelmMajor): string {
  const name = major === 3 ? HELM3_ENV : HELM4_ENV;
  const path = process.env[name];
  if (!path) throw new Error(`No Helm ${major}: run through vitest (globalSetup extracts it into ${name})`);
  return path;
}

export function helmFor(major: HelmMajor, kubeconfig: string): Helm {
  const binary = helmBinary(major);
  const dir = mkdtempSync(join(tmpdir(), `adg-helm${major}-`));
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: kubeconfigPath,
    HELM_CONFIG_HOME: join(dir, 'config'),
    HELM_CACHE_HOME: join(dir, 'cache'),
    HELM_DATA_HOME: join(dir, 'data'),
    // Helm's default: release records as Secrets in the release namespace.
    HELM_DRIVER: 'secret',
  };
  const run = (args: string[], options: HelmRunOptions = {}): Promise<HelmResult> =>
    new Promise((resolve) => {
      const started = performance.now();
      const child = execFile(
        binary,
        args,
        { timeout: options.timeoutMs ?? 360_000, env: { ...env, ...options.env }, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - started });
        },
      );
      child.stdin?.end(options.input ?? '');
    });
  const ok = async (args: string[], options?: HelmRunOptions): Promise<HelmResult> => {
    const result = await run(args, options);
    if (result.code !== 0)
      throw new Error(`helm ${major} ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
    return result;
  };
  return {
    major,
    binary,
    kubeconfigPath,
    run,
    ok,
    async template(args, options) {
      return (await ok(['template', ...args], options)).stdout;
    },
    async history(release, namespace) {
      return JSON.parse((await ok(['history', release, '-n', namespace, '-o', 'json'])).stdout);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
