// Deploy-tool flows (test/e2e/scenarios/flows.ts) on the real control plane, with the assertions of
// their simulated run, and two guard replicas with the driving one killed inside the downgrade exec
// (test/e2e/ha.test.ts on the simulated cluster, with the installed Service).
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { leaseName } from '../../src/coordinator/operation.js';
import {
  FULL_SEQUENCE,
  expectDowngraded,
  killNow,
  onDowngradeWalk,
  releaseReady,
  stepSequence,
  upgradeRelease,
  waitFor,
  type ReleaseSpec,
} from '../e2e/harness.js';
import { flowScenarios } from '../e2e/scenarios/flows.js';
import { startedPerTest } from '../e2e/scenarios/start.js';
import { realControlPlane } from './e2e-backend.js';

const real = realControlPlane();

flowScenarios(real.start);

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
  const start = startedPerTest(real.start);

  it('killing the driving replica inside the downgrade exec hands the operation over', async () => {
    const e = await start();
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
      restore = onDowngradeWalk(e, () => {
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
