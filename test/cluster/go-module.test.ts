// The Go module of the real control plane: its replace lines are exactly k8s.io/kubernetes's staging
// modules at the pinned release (generated, never hand-edited), and the binaries report that release.
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildControlPlane, CLUSTER_MODULE_DIR, kubernetesVersion } from './components.js';

describe('test/cluster Go module', () => {
  it('has the replace block generate-replaces.ts derives from k8s.io/kubernetes go.mod', () => {
    const result = spawnSync(process.execPath, [join(CLUSTER_MODULE_DIR, 'generate-replaces.ts'), '--check'], {
      encoding: 'utf8',
      env: { ...process.env, GOFLAGS: '-mod=mod' },
    });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain(`match k8s.io/kubernetes ${kubernetesVersion()}`);
  });

  it('builds binaries stamped with the pinned release', async () => {
    const binaries = await buildControlPlane();
    const version = kubernetesVersion();
    expect(execFileSync(binaries['kube-apiserver'], ['--version'], { encoding: 'utf8' }).trim()).toBe(
      `Kubernetes ${version}`,
    );
    expect(execFileSync(binaries['kube-scheduler'], ['--version'], { encoding: 'utf8' }).trim()).toBe(
      `Kubernetes ${version}`,
    );
    expect(execFileSync(binaries.etcd, ['--version'], { encoding: 'utf8' })).toMatch(/etcd Version: 3\.6\.8/);
  });
});
