// The real control plane's programs, built from the Go module in this directory through goBuild
// (cached on go.mod/go.sum and the Go version). The version stamps are the ones Kubernetes' own
// release build sets (hack/lib/version.sh), so `kubectl version` reports the pinned release.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { goBuild, type GoOutput } from '../../testbed/go-build.js';

/** The repository's root: this file runs from test/cluster (vitest) or dist-cluster/test/cluster (npm run cluster). */
export const REPO_ROOT = ((): string => {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
    dir = parent;
  }
  return dir;
})();

export const CLUSTER_MODULE_DIR = join(REPO_ROOT, 'test', 'cluster');

export interface ControlPlaneBinaries {
  etcd: string;
  'kube-apiserver': string;
  'kube-controller-manager': string;
  'kube-scheduler': string;
}

/** The pinned k8s.io/kubernetes release of go.mod, e.g. v1.36.3. */
export function kubernetesVersion(moduleDir = CLUSTER_MODULE_DIR): string {
  const found = /^\s*k8s\.io\/kubernetes\s+(v1\.\d+\.\d+)(\s*\/\/ indirect)?\s*$/m.exec(
    readFileSync(join(moduleDir, 'go.mod'), 'utf8'),
  );
  if (!found?.[1]) throw new Error(`no k8s.io/kubernetes requirement in ${join(moduleDir, 'go.mod')}`);
  return found[1];
}

/** The -X stamps of k8s.io/component-base/version and k8s.io/client-go/pkg/version. */
export function versionLdflags(version: string): string[] {
  const [major, minor] = version.replace(/^v/, '').split('.');
  const values = { gitVersion: version, gitMajor: major!, gitMinor: minor!, gitTreeState: 'clean' };
  return ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) =>
    Object.entries(values).map(([name, value]) => `-X ${pkg}.${name}=${value}`),
  );
}

export function controlPlaneOutputs(moduleDir = CLUSTER_MODULE_DIR): GoOutput[] {
  const ldflags = versionLdflags(kubernetesVersion(moduleDir));
  return [
    { name: 'etcd', pkg: 'go.etcd.io/etcd/server/v3' },
    { name: 'kube-apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', ldflags },
    { name: 'kube-controller-manager', pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager', ldflags },
    { name: 'kube-scheduler', pkg: 'k8s.io/kubernetes/cmd/kube-scheduler', ldflags },
  ];
}

/** Builds what is missing (minutes the first time, a hash and a stat afterwards). */
export async function buildControlPlane(log?: (line: string) => void): Promise<ControlPlaneBinaries> {
  const paths = await goBuild({
    moduleDir: CLUSTER_MODULE_DIR,
    outputs: controlPlaneOutputs(),
    ...(log ? { log } : {}),
  });
  return paths as unknown as ControlPlaneBinaries;
}
