// Deploy-tool flows, a guard killed inside the downgrade exec, and two guard replicas with the driving
// one killed, on the real control plane, with the assertions of their simulated versions
// (test/e2e/downgrade.test.ts, scenarios-flows.test.ts, scenarios-failures.test.ts, ha.test.ts).
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { leaseName } from '../../src/coordinator/operation.js';
import type { AirflowRuntime } from '../../testbed/sim/airflow/runtime.js';
import {
  FULL_SEQUENCE,
  expectDowngraded,
  headOf,
  killNow,
  releaseReady,
  restartGuard,
  stepSequence,
  upgradeRelease,
  waitFor,
  type ClusterUnderTest,
  type E2E,
  type ReleaseSpec,
} from '../e2e/harness.js';
import { startClusterForE2E, startRealE2E } from './e2e-backend.js';
import type { RealCluster } from './cluster.js';

let cluster: RealCluster | undefined;
let e2e: E2E<ClusterUnderTest> | undefined;

beforeAll(async () => {
  cluster = await startClusterForE2E((line) => console.log(line));
});
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});
afterAll(async () => {
  await cluster?.stop();
});

describe('deploy-tool flows', () => {
  it('Helm upgrade with the migration Job as a pre-upgrade hook (Job first)', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = { release: 'pre', namespace: 'pre', version: '3.1.0', replicas: { scheduler: 2 } };
    await e2e.installRelease(s);
    await e2e.startGuard();
    const upgrade = await upgradeRelease(e2e, s, '3.0.2', { hook: 'pre-upgrade' });
    // Helm waits on the held Job until its --timeout (5 min by default): the operation must release it well before.
    console.log(`pre-upgrade hook Job: created -> complete in ${upgrade.hookJobMs} ms`);
    expect(upgrade.hookJobMs).toBeLessThan(30_000);
    // The Deployments arrive after the operation is done, drained at 0: each update is admitted held
    // at 0 replicas, whatever count Helm sends, and the coordinator restores it.
    for (const a of upgrade.applied) {
      expect(a.wasDrained, a.name).toBe(true);
      expect(a.admittedReplicas, a.name).toBe(0);
    }
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(op.openedBy).toBe('Job/pre-run-airflow-migrations');
  });

  it('Argo-style sync: one workload at a time, 300 ms apart; drained workloads stay at 0 whatever replicas the sync sends', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = {
      release: 'argo',
      namespace: 'argo',
      version: '3.1.0',
      replicas: { scheduler: 2, worker: 2 },
    };
    await e2e.installRelease(s);
    await e2e.startGuard();
    const sync = await upgradeRelease(e2e, s, '3.0.2', { hook: 'post-upgrade', pauseMs: 300 });
    const drainedUpdates = sync.applied.filter((a) => a.wasDrained);
    expect(drainedUpdates.length).toBeGreaterThan(0);
    for (const a of drainedUpdates) expect(a.admittedReplicas, `${a.name} admitted replicas`).toBe(0);
    const op = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
  });
});

/**
 * Calls `then` once, synchronously, when the simulated Airflow of the node agent starts walking the
 * migrations of an `airflow db downgrade` (the exec is running and holds the migration lock): a kill
 * point that does not depend on how long the migration steps take.
 */
function onDowngradeWalk(runtime: AirflowRuntime, then: () => void): () => void {
  const faults = runtime.faults;
  const take = faults.take;
  const restore = (): void => {
    faults.take = take;
  };
  faults.take = ((target, kinds) => {
    if ((kinds as readonly string[]).includes('exec-halfway') && target.argv?.join(' ').includes('db downgrade')) {
      restore();
      then();
    }
    return take(target, kinds);
  }) as typeof take;
  return restore;
}

describe('the guard is killed (SIGKILL) and restarted mid-operation', () => {
  it('during the downgrade exec: the restarted guard completes it with zero violations', async () => {
    e2e = await startRealE2E(cluster!);
    const s: ReleaseSpec = {
      release: 'kill-exec',
      namespace: 'kill-exec',
      version: '3.1.0',
      replicas: { scheduler: 2 },
    };
    await e2e.installRelease(s);
    const guard = await e2e.startGuard();
    let killed: () => void = () => undefined;
    const inExec = new Promise<void>((resolve) => (killed = resolve));
    const restore = onDowngradeWalk(cluster!.runtime, () => {
      killNow(e2e!.guards[0]!);
      killed();
    });
    try {
      const restarted = inExec.then(() => restartGuard(e2e!, guard));
      await upgradeRelease(e2e, s, '3.0.2', { hook: 'none', retryUnreachableWebhook: true });
      await restarted;
    } finally {
      restore();
    }
    const done = await expectDowngraded(e2e, s, '3.0.2');
    expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
    expect(await e2e.revision()).toBe(headOf('3.0.2'));
  });
});

/**
 * What a Service in front of the guard's replicas does for the API server (there is no kube-proxy
 * here): each connection goes to the next replica that accepts it. TLS passes through untouched.
 */
async function startReplicaProxy(
  ports: number[],
): Promise<{ port: number; connections: Map<number, number>; refused: Map<number, number>; close(): Promise<void> }> {
  const connections = new Map<number, number>();
  const refused = new Map<number, number>();
  const sockets = new Set<net.Socket>();
  let next = 0;
  const connect = (client: net.Socket, tries: number): void => {
    const port = ports[next++ % ports.length]!;
    const upstream = net.connect({ host: '127.0.0.1', port });
    sockets.add(upstream);
    upstream.once('connect', () => {
      connections.set(port, (connections.get(port) ?? 0) + 1);
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    upstream.once('error', () => {
      sockets.delete(upstream);
      refused.set(port, (refused.get(port) ?? 0) + 1);
      if (upstream.readyState === 'opening' || !client.destroyed) {
        if (tries > 1) connect(client, tries - 1);
        else client.destroy();
      }
    });
  };
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    connect(client, ports.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('HA: two replicas of the guard', () => {
  it('killing the driving replica inside the downgrade exec hands the operation over', async () => {
    e2e = await startRealE2E(cluster!);
    const e = e2e;
    const s: ReleaseSpec = { release: 'ha', namespace: 'ha', version: '3.1.0', replicas: { scheduler: 2 } };
    const a = await e.startGuard('airflow-downgrade-guard-a');
    const b = await e.startGuard('airflow-downgrade-guard-b');
    // Both replicas behind one address, as behind the install's Service.
    const proxy = await startReplicaProxy([a.port, b.port]);
    const LEASE_SECONDS = 3;
    // Lease expiry, then the survivor's next resync (2 s) or poll finds the operation and takes it.
    const HANDOVER_BOUND_MS = LEASE_SECONDS * 1000 + 2_000 + 2_000;
    let holder: string | undefined;
    let polling = true;
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${s.namespace}/leases/${leaseName(s.release)}`;
    const pollLease = (async () => {
      while (polling) {
        holder =
          (await e.admin.rest.request<{ spec?: { holderIdentity?: string } }>('GET', leasePath).catch(() => undefined))
            ?.spec?.holderIdentity ?? holder;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let restore: (() => void) | undefined;
    try {
      const hookPath = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/airflow-downgrade-guard';
      const config = await e.admin.rest.request<{ webhooks: Array<{ clientConfig: { url: string } }> }>(
        'GET',
        hookPath,
      );
      await e.admin.rest.request('PATCH', hookPath, {
        body: config.webhooks.map((_, i) => ({
          op: 'replace',
          path: `/webhooks/${i}/clientConfig/url`,
          value: `https://127.0.0.1:${proxy.port}/mutate`,
        })),
        contentType: 'application/json-patch+json',
      });
      await e.installRelease(s);

      // The driver is the Lease holder; it is SIGKILLed when its exec starts the migration walk.
      let killed: { driver: typeof a; at: number } | undefined;
      let noted: (() => void) | undefined;
      const inExec = new Promise<void>((resolve) => (noted = resolve));
      restore = onDowngradeWalk(cluster!.runtime, () => {
        const driver = e.guards.find((g) => g.identity === holder);
        if (driver) {
          killNow(driver);
          killed = { driver, at: Date.now() };
        }
        noted!();
      });
      // The kill lands when the exec starts, which may be before the sync has sent its last update: an
      // admission in flight to the killed replica fails, and the sync sends it again (as kill-exec does).
      const upgrade = upgradeRelease(e, s, '3.0.2', { hook: 'post-upgrade', retryUnreachableWebhook: true });
      upgrade.catch(() => undefined); // awaited below
      await inExec;
      expect(killed, 'the Lease holder was known when the exec began').toBeDefined();
      const { driver, at: killedAt } = killed!;
      const survivor = driver === a ? b : a;
      const newHolder = await waitFor(
        'survivor holds the lease',
        () => holder === survivor.identity && holder,
        30_000,
        20,
      );
      const handoverMs = Date.now() - killedAt;
      expect(newHolder).toBe(survivor.identity);
      await upgrade;
      const done = await expectDowngraded(e, s, '3.0.2');
      console.log(
        `[ha] driver ${driver.identity} SIGKILLed inside the downgrade exec; ${survivor.identity} took the Lease after ${handoverMs} ms (bound ${HANDOVER_BOUND_MS} ms); operation done ${Date.now() - killedAt} ms after the kill`,
      );
      console.log(
        `[ha] replicas ${a.identity}:${a.port} ${b.identity}:${b.port}; connections per replica port: ${[...proxy.connections].map(([p, n]) => `${p}=${n}`).join(', ')}; failed: ${[...proxy.refused].map(([p, n]) => `${p}=${n}`).join(', ')}`,
      );
      expect(handoverMs).toBeLessThan(HANDOVER_BOUND_MS);
      expect(stepSequence(done)).toEqual(FULL_SEQUENCE);
      expect(releaseReady(e.sim, { ...s, version: '3.0.2' })).toBe(true);
      for (const g of e.guards)
        expect(
          g.logs.filter((l) => /forbidden/i.test(l)),
          g.identity,
        ).toEqual([]);
    } finally {
      restore?.();
      polling = false;
      await pollLease;
      await proxy.close();
    }
  });
});
