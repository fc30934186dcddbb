import jsonpatch, { type Operation } from 'fast-json-patch';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  describeCertificate,
  generateCertificates,
  splitPemBundle,
  type GeneratedCertificates,
} from '../../src/certs/generate.js';
import {
  certificateSecret,
  certificatesFromSecret,
  injectCaBundle,
  needsRotation,
  rotationDueAt,
  type SecretObject,
} from '../../src/certs/rotation.js';
import {
  ensureServingCertificate,
  startCertificateManager,
  type CertificateCluster,
  type SelfManagedOptions,
} from '../../src/certs/self-managed.js';
import { selfManagedCertificateSource, type ServingPair } from '../../src/certs/source.js';

const DAY = 86_400_000;
const T0 = new Date('2025-01-01T00:00:00Z');

type WebhookConfig = {
  metadata: { name: string; uid?: string };
  webhooks: Array<{ name: string; clientConfig: { caBundle?: string; service?: object } }>;
};

class Conflict extends Error {
  code = 409;
}

/** A tiny in-memory API server: resourceVersions, AlreadyExists and Conflict like the real one. */
class FakeCluster implements CertificateCluster {
  secrets = new Map<string, SecretObject>();
  webhooks = new Map<string, WebhookConfig>();
  calls: string[] = [];
  private rv = 1;
  /** Runs before a write lands, to interleave another replica's write. */
  beforeWrite: (() => Promise<void>) | null = null;

  async getSecret(namespace: string, name: string) {
    this.calls.push(`get secret ${name}`);
    const s = this.secrets.get(`${namespace}/${name}`);
    return s ? structuredClone(s) : null;
  }
  async createSecret(namespace: string, secret: SecretObject) {
    this.calls.push(`create secret ${secret.metadata.name}`);
    await this.runBeforeWrite();
    const key = `${namespace}/${secret.metadata.name}`;
    if (this.secrets.has(key)) throw new Conflict('already exists');
    const stored = { ...structuredClone(secret), metadata: { ...secret.metadata, resourceVersion: String(this.rv++) } };
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }
  async replaceSecret(namespace: string, name: string, secret: SecretObject) {
    this.calls.push(`replace secret ${name}`);
    await this.runBeforeWrite();
    const key = `${namespace}/${name}`;
    const current = this.secrets.get(key);
    if (!current || current.metadata.resourceVersion !== secret.metadata.resourceVersion)
      throw new Conflict('conflict');
    const stored = { ...structuredClone(secret), metadata: { ...secret.metadata, resourceVersion: String(this.rv++) } };
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }
  async getWebhookConfiguration(name: string) {
    this.calls.push(`get webhook ${name}`);
    const w = this.webhooks.get(name);
    return w ? structuredClone(w) : null;
  }
  async patchWebhookConfiguration(name: string, patch: Operation[]) {
    this.calls.push(`patch webhook ${name}`);
    const w = this.webhooks.get(name);
    if (!w) throw new Error('not found');
    this.webhooks.set(name, jsonpatch.applyPatch(structuredClone(w), patch, true).newDocument);
  }
  private async runBeforeWrite() {
    const hook = this.beforeWrite;
    this.beforeWrite = null;
    await hook?.();
  }
}

function webhookConfig(): WebhookConfig {
  return {
    metadata: { name: 'airflow-downgrade-guard' },
    webhooks: ['a.example.io', 'b.example.io'].map((name) => ({
      name,
      clientConfig: { service: { name: 'airflow-downgrade-guard' } },
    })),
  };
}

function options(now: Date, extra: Partial<SelfManagedOptions> = {}): SelfManagedOptions {
  return {
    namespace: 'guard',
    secretName: 'airflow-downgrade-guard-tls',
    service: 'airflow-downgrade-guard',
    webhookConfigurationName: 'airflow-downgrade-guard',
    now: () => now,
    ...extra,
  };
}

function caBundles(cluster: FakeCluster): string[] {
  return cluster.webhooks
    .get('airflow-downgrade-guard')!
    .webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString());
}

describe('rotation helpers', () => {
  let certs: GeneratedCertificates;
  beforeAll(() => {
    certs = generateCertificates({ service: 'svc', namespace: 'ns', now: T0, validityDays: 100 });
  });

  it('needsRotation is false until the renewal window, true inside it and after expiry', () => {
    const renewBefore = 30 * DAY;
    expect(needsRotation(certs.cert, new Date(T0.getTime() + DAY), renewBefore)).toBe(false);
    expect(needsRotation(certs.cert, new Date(T0.getTime() + 69 * DAY), renewBefore)).toBe(false);
    expect(needsRotation(certs.cert, new Date(T0.getTime() + 70 * DAY), renewBefore)).toBe(true);
    expect(needsRotation(certs.cert, new Date(T0.getTime() + 101 * DAY), renewBefore)).toBe(true);
    expect(rotationDueAt(certs.cert, renewBefore).toISOString()).toBe(new Date(T0.getTime() + 70 * DAY).toISOString());
  });

  it('needsRotation is true for garbage and for a certificate not valid yet', () => {
    expect(needsRotation('not a pem', T0)).toBe(true);
    expect(needsRotation(certs.cert, new Date(T0.getTime() - DAY))).toBe(true);
  });

  it('certificateSecret round-trips through certificatesFromSecret', () => {
    const secret = certificateSecret({ name: 'tls', namespace: 'ns', certs });
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(certificatesFromSecret(secret)).toEqual(certs);
    expect(certificatesFromSecret({ data: { 'tls.crt': 'eA==' } })).toBeNull();
  });

  it('injectCaBundle sets caBundle on every webhook and is empty once set', () => {
    const config = webhookConfig();
    const patch = injectCaBundle(config, certs.caCert);
    const patched = jsonpatch.applyPatch(structuredClone(config), patch, true).newDocument;
    for (const w of patched.webhooks)
      expect(Buffer.from(w.clientConfig.caBundle!, 'base64').toString()).toBe(certs.caCert);
    expect(injectCaBundle(patched, certs.caCert)).toEqual([]);
  });

  it('injectCaBundle patch fails instead of writing the wrong entry when webhooks were reordered', () => {
    const config = webhookConfig();
    const patch = injectCaBundle(config, certs.caCert);
    const reordered = { ...config, webhooks: [...config.webhooks].reverse() };
    expect(() => jsonpatch.applyPatch(structuredClone(reordered), patch, true)).toThrow();
  });
});

describe('ensureServingCertificate', () => {
  it('creates the Secret and injects the CA on first start, then reuses it', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    const first = await ensureServingCertificate(cluster, options(T0));
    expect(first.action).toBe('created');
    expect(first.caBundlePatched).toBe(true);
    expect(caBundles(cluster)).toEqual([first.certs.caCert, first.certs.caCert]);
    expect(describeCertificate(first.certs.cert).subjectAltNames).toContain('DNS:airflow-downgrade-guard.guard.svc');

    const second = await ensureServingCertificate(cluster, options(new Date(T0.getTime() + 10 * DAY)));
    expect(second.action).toBe('reused');
    expect(second.caBundlePatched).toBe(false);
    expect(second.certs).toEqual(first.certs);
  });

  it('makes the Secret owned by the webhook configuration (it goes with the configuration), and adds the owner to a Secret made before, keeping its certificates', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', {
      ...webhookConfig(),
      metadata: { name: 'airflow-downgrade-guard', uid: 'uid-1' },
    });
    const owner = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      name: 'airflow-downgrade-guard',
      uid: 'uid-1',
    };
    const first = await ensureServingCertificate(cluster, options(T0));
    expect(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!.metadata.ownerReferences).toEqual([owner]);

    // A Secret without the owner (made before owners were set): the same certificates, owner added once.
    const secret = cluster.secrets.get('guard/airflow-downgrade-guard-tls')!;
    delete secret.metadata.ownerReferences;
    const adopted = await ensureServingCertificate(cluster, options(new Date(T0.getTime() + DAY)));
    expect(adopted).toMatchObject({ action: 'reused', caBundlePatched: false, certs: first.certs });
    expect(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!.metadata.ownerReferences).toEqual([owner]);
    cluster.calls = [];
    await ensureServingCertificate(cluster, options(new Date(T0.getTime() + 2 * DAY)));
    expect(cluster.calls.filter((c) => c.startsWith('replace'))).toEqual([]);
  });

  it('renews the serving certificate with the same CA inside the renewal window', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    const first = await ensureServingCertificate(cluster, options(T0));
    const later = new Date(T0.getTime() + 340 * DAY); // 25 days before the 365-day expiry
    const renewed = await ensureServingCertificate(cluster, options(later));
    expect(renewed.action).toBe('rotated');
    expect(renewed.certs.cert).not.toBe(first.certs.cert);
    expect(renewed.certs.caCert).toBe(first.certs.caCert);
    expect(renewed.caBundlePatched).toBe(false); // same CA: caBundle untouched
    expect(describeCertificate(renewed.certs.cert).notAfter.getTime()).toBeGreaterThan(later.getTime() + 300 * DAY);
    expect(certificatesFromSecret(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!)).toEqual(renewed.certs);
  });

  it('replaces an expiring CA but keeps the old one in caBundle', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    const first = await ensureServingCertificate(cluster, options(T0, { caRenewBeforeMs: 3600 * DAY }));
    // The CA (3650 days) is already inside a 3600-day window 51 days later.
    const later = new Date(T0.getTime() + 51 * DAY);
    const rotated = await ensureServingCertificate(cluster, options(later, { caRenewBeforeMs: 3600 * DAY }));
    expect(rotated.action).toBe('rotated');
    const bundle = splitPemBundle(rotated.certs.caCert);
    expect(bundle).toHaveLength(2);
    expect(bundle[1]).toBe(first.certs.caCert);
    expect(rotated.caBundlePatched).toBe(true);
    expect(caBundles(cluster)[0]).toBe(rotated.certs.caCert);
  });

  it('adopts a Secret without a CA key by issuing a fresh set', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    await cluster.createSecret('guard', {
      ...certificateSecret({
        name: 'airflow-downgrade-guard-tls',
        namespace: 'guard',
        certs: generateCertificates({ service: 's', namespace: 'n' }),
      }),
      data: { 'tls.crt': 'eA==' },
    });
    const result = await ensureServingCertificate(cluster, options(T0));
    expect(result.action).toBe('adopted');
    expect(certificatesFromSecret(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!)).toEqual(result.certs);
  });

  it('two replicas starting together end up with one certificate', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    let other: Awaited<ReturnType<typeof ensureServingCertificate>> | undefined;
    // Replica B creates the Secret between replica A's read and A's create.
    cluster.beforeWrite = async () => {
      other = await ensureServingCertificate(cluster, options(T0));
    };
    const mine = await ensureServingCertificate(cluster, options(T0));
    expect(other?.action).toBe('created');
    expect(mine.action).toBe('reused');
    expect(mine.certs).toEqual(other?.certs);
    expect(caBundles(cluster)[0]).toBe(mine.certs.caCert);
  });

  it('a replica that loses a rotation race serves the winner’s certificate', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    await ensureServingCertificate(cluster, options(T0));
    const later = new Date(T0.getTime() + 340 * DAY);
    let winner: Awaited<ReturnType<typeof ensureServingCertificate>> | undefined;
    cluster.beforeWrite = async () => {
      winner = await ensureServingCertificate(cluster, options(later));
    };
    const loser = await ensureServingCertificate(cluster, options(later));
    expect(winner?.action).toBe('rotated');
    expect(loser.action).toBe('reused');
    expect(loser.certs.cert).toBe(winner?.certs.cert);
  });

  it('says what to do when the webhook configuration is missing', async () => {
    const cluster = new FakeCluster();
    await expect(ensureServingCertificate(cluster, options(T0))).rejects.toThrow(
      /MutatingWebhookConfiguration airflow-downgrade-guard not found/,
    );
  });

  it('passes on errors other than conflicts', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    cluster.createSecret = async () => {
      throw Object.assign(new Error('forbidden'), { code: 403 });
    };
    await expect(ensureServingCertificate(cluster, options(T0))).rejects.toThrow('forbidden');
  });
});

describe('startCertificateManager', () => {
  it('hands the first pair to onChange and later ones only when they change', async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    let now = T0;
    const seen: string[] = [];
    const manager = await startCertificateManager(cluster, {
      ...options(T0),
      now: () => now,
      intervalMs: 3_600_000,
      onChange: (c) => seen.push(c.cert),
    });
    try {
      expect(seen).toHaveLength(1);
      await manager.refresh();
      expect(seen).toHaveLength(1);
      now = new Date(T0.getTime() + 340 * DAY);
      await manager.refresh();
      expect(seen).toHaveLength(2);
      expect(manager.current().cert).toBe(seen[1]);
    } finally {
      manager.stop();
    }
  });
});

describe('the self-managed certificate source', () => {
  it("starts with the Secret pair and hands on a renewal (its own or another replica's), not the first pair again", async () => {
    const cluster = new FakeCluster();
    cluster.webhooks.set('airflow-downgrade-guard', webhookConfig());
    let now = T0;
    const renewed: ServingPair[] = [];
    const source = selfManagedCertificateSource(
      cluster,
      { ...options(T0), now: () => now },
      {
        intervalMs: 20,
        onError: (e) => {
          throw e;
        },
      },
    );
    try {
      const first = await source.start((pair) => renewed.push(pair));
      const stored = certificatesFromSecret(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!)!;
      expect(first).toEqual({ cert: stored.cert, key: stored.key });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(renewed).toEqual([]);
      now = new Date(T0.getTime() + 340 * DAY);
      await vi.waitFor(() => expect(renewed).toHaveLength(1), { timeout: 5000, interval: 20 });
      const rotated = certificatesFromSecret(cluster.secrets.get('guard/airflow-downgrade-guard-tls')!)!;
      expect(renewed[0]).toEqual({ cert: rotated.cert, key: rotated.key });
      expect(rotated.cert).not.toBe(first.cert);
    } finally {
      source.stop();
    }
  });
});
