// What the return and repeated-downgrade scenarios need from Helm, behind one interface so a driver
// running the real Helm binary can replace this imitation. The imitation applies the chart the way
// test/e2e already imitates Helm (harness.ts upgradeRelease):
//  - `helm upgrade`: every workload's image (and the chart's replica counts), the migration Job as
//    a post-upgrade hook (upstream layout) or a pre-upgrade hook;
//  - `helm rollback`: the previous revision's manifests applied again, and no hooks at all;
//  - `helm upgrade --atomic` (Helm 4: --rollback-on-failure): the upgrade, then the rollback once
//    the timeout passes, i.e. at whatever point the guard's operation has reached by then.
import { upgradeRelease, type ClusterUnderTest, type E2E, type ReleaseSpec } from './harness.js';

export interface HelmDriver {
  readonly name: string;
  upgrade(
    spec: ReleaseSpec,
    version: string,
    options?: { hook?: 'pre-upgrade' | 'post-upgrade' | 'none' },
  ): Promise<void>;
  /** Back to the revision that ran `version` (no hooks run). */
  rollback(spec: ReleaseSpec, version: string): Promise<void>;
  /**
   * `helm upgrade --atomic`: upgrade to `version`; when `timedOut` resolves, roll back to `previous`.
   * Resolves once the rollback was applied.
   */
  atomicUpgrade(spec: ReleaseSpec, version: string, previous: string, timedOut: Promise<unknown>): Promise<void>;
}

export function imitatedHelm(e: E2E<ClusterUnderTest>): HelmDriver {
  const driver: HelmDriver = {
    name: 'imitated helm',
    async upgrade(spec, version, options = {}) {
      await upgradeRelease(e, spec, version, { hook: options.hook ?? 'post-upgrade' });
    },
    async rollback(spec, version) {
      await upgradeRelease(e, spec, version, { hook: 'none' });
    },
    async atomicUpgrade(spec, version, previous, timedOut) {
      // The post-upgrade hook Job of the older version is held by the guard: Helm waits on it until
      // its timeout, then rolls back. The imitation applies the workloads and waits for the timeout.
      await upgradeRelease(e, spec, version, { hook: 'none' });
      await timedOut;
      await driver.rollback(spec, previous);
    },
  };
  return driver;
}
