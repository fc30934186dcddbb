// The testbed starter (testbed/start.ts) that the e2e harness, the demo and the benchmarks share:
// what it sets up for the guard, a guard started on it, and nothing left once it stops.
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { expect, it } from 'vitest';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { GUARD_NAMESPACE, startTestbed } from '../../testbed/start.js';

function getStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => resolve(res.statusCode ?? 0)).on('error', reject);
  });
}

it("sets up the guard's namespace, certificate, kubeconfigs and webhook, runs a guard, and removes it all on stop", async () => {
  const testbed = await startTestbed({ prefix: 'adg-testbed-test-' });
  let stopped = false;
  try {
    expect(testbed.sim.store.get(RESOURCES.namespaces, undefined, GUARD_NAMESPACE)).toBeDefined();
    for (const file of [testbed.tls.certFile, testbed.tls.keyFile, testbed.tls.caFile, testbed.adminKubeconfig])
      expect(existsSync(file), file).toBe(true);
    // The guard's kubeconfig carries a token of its own ServiceAccount, not the admin's.
    expect(readFileSync(testbed.guardKubeconfig, 'utf8')).not.toBe(readFileSync(testbed.adminKubeconfig, 'utf8'));

    const guard = await testbed.startGuard('testbed-guard');
    expect(guard.port).toBeGreaterThan(0);
    const url = `https://127.0.0.1:${guard.port}`;
    expect(await getStatus(`${url}/healthz`, testbed.tls.caPem)).toBe(200);

    testbed.registerWebhook(url);
    const [webhook] = testbed.sim.store.list(RESOURCES.mutatingwebhookconfigurations).items as unknown as Array<{
      webhooks: Array<{ clientConfig: { url: string; caBundle: string } }>;
    }>;
    expect(webhook!.webhooks[0]!.clientConfig).toEqual({
      url: `${url}/mutate`,
      caBundle: Buffer.from(testbed.tls.caPem).toString('base64'),
    });

    await testbed.stop();
    stopped = true;
    expect(guard.process.exitCode !== null || guard.process.signalCode !== null).toBe(true);
    expect(existsSync(testbed.dir)).toBe(false);
  } finally {
    if (!stopped) await testbed.stop();
  }
});
