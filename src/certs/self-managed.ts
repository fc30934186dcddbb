import type { Operation } from 'fast-json-patch';
import {
  describeCertificate,
  generateCa,
  issueServingCertificate,
  splitPemBundle,
  type GeneratedCertificates,
} from './generate.js';
import {
  certificateSecret,
  certificatesFromSecret,
  DEFAULT_CA_RENEW_BEFORE_MS,
  DEFAULT_RENEW_BEFORE_MS,
  injectCaBundle,
  needsRotation,
  type OwnerReference,
  type SecretObject,
} from './rotation.js';

/**
 * The few cluster calls self-managed mode makes, so it can run against a fake in tests and against
 * @kubernetes/client-node in `serve`. Errors for "already exists" / "conflict" must carry
 * `code` or `statusCode` 409 (client-node's ApiException does).
 */
export interface CertificateCluster {
  getSecret(namespace: string, name: string): Promise<SecretObject | null>;
  createSecret(namespace: string, secret: SecretObject): Promise<SecretObject>;
  /** Replace with optimistic concurrency: secret.metadata.resourceVersion must match. */
  replaceSecret(namespace: string, name: string, secret: SecretObject): Promise<SecretObject>;
  getWebhookConfiguration(name: string): Promise<{
    metadata?: { uid?: string };
    webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
  } | null>;
  patchWebhookConfiguration(name: string, patch: Operation[]): Promise<void>;
}

export interface SelfManagedOptions {
  namespace: string;
  secretName: string;
  service: string;
  webhookConfigurationName: string;
  renewBeforeMs?: number;
  caRenewBeforeMs?: number;
  validityDays?: number;
  extraNames?: string[];
  now?: () => Date;
}

export interface EnsureResult {
  certs: GeneratedCertificates;
  /** What this call did to the Secret. */
  action: 'created' | 'reused' | 'rotated' | 'adopted';
  caBundlePatched: boolean;
}

const MAX_ATTEMPTS = 5;

function isConflict(err: unknown): boolean {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return e?.code === 409 || e?.statusCode === 409;
}

function freshCertificates(options: SelfManagedOptions, now: Date, previousCaBundle?: string): GeneratedCertificates {
  const ca = generateCa({ now });
  const serving = issueServingCertificate({ ...servingRequest(options, now), ca });
  // Keep the CAs still valid in the bundle so servers still on the old certificate stay trusted.
  const kept = previousCaBundle ? splitPemBundle(previousCaBundle).filter((pem) => isStillValid(pem, now)) : [];
  return { caCert: [ca.cert, ...kept].join(''), caKey: ca.key, cert: serving.cert, key: serving.key };
}

function servingRequest(options: SelfManagedOptions, now: Date) {
  return {
    service: options.service,
    namespace: options.namespace,
    now,
    ...(options.validityDays !== undefined ? { validityDays: options.validityDays } : {}),
    ...(options.extraNames !== undefined ? { dnsNames: options.extraNames } : {}),
  };
}

function isStillValid(pem: string, now: Date): boolean {
  try {
    return describeCertificate(pem).notAfter.getTime() > now.getTime();
  } catch {
    return false;
  }
}

/** The first certificate in ca.crt is the signing CA (the one whose key is ca.key). */
function signingCa(certs: GeneratedCertificates): string {
  return splitPemBundle(certs.caCert)[0] ?? '';
}

/** What the Secret's content should become, or null when it is fine as it is. */
function renewedCertificates(
  current: GeneratedCertificates | null,
  options: SelfManagedOptions,
  now: Date,
): GeneratedCertificates | null {
  const renewBefore = options.renewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS;
  if (
    current === null ||
    needsRotation(signingCa(current), now, options.caRenewBeforeMs ?? DEFAULT_CA_RENEW_BEFORE_MS)
  ) {
    return freshCertificates(options, now, current?.caCert);
  }
  if (!needsRotation(current.cert, now, renewBefore)) return null;
  const serving = issueServingCertificate({
    ...servingRequest(options, now),
    ca: { cert: signingCa(current), key: current.caKey },
  });
  return { ...current, cert: serving.cert, key: serving.key };
}

/**
 * Create or reuse the serving-certificate Secret, renewing it when due, then make sure the webhook
 * configuration trusts its CA. Safe to run from every replica at once: the Secret is written with
 * create / resourceVersion-checked replace, and a replica that loses a race re-reads the winner's.
 */
export async function ensureServingCertificate(
  cluster: CertificateCluster,
  options: SelfManagedOptions,
): Promise<EnsureResult> {
  const now = (options.now ?? (() => new Date()))();
  let result: { certs: GeneratedCertificates; action: EnsureResult['action'] } | null = null;
  const owner = await webhookOwner(cluster, options.webhookConfigurationName);
  for (let attempt = 0; attempt < MAX_ATTEMPTS && result === null; attempt++) {
    result = await reconcileSecret(cluster, options, now, owner);
  }
  if (result === null)
    throw new Error(
      `could not settle Secret ${options.namespace}/${options.secretName} after ${MAX_ATTEMPTS} attempts (write conflicts)`,
    );
  const caBundlePatched = await ensureCaBundle(cluster, options.webhookConfigurationName, result.certs.caCert);
  return { ...result, caBundlePatched };
}

function missingWebhookConfiguration(name: string): Error {
  return new Error(
    `MutatingWebhookConfiguration ${name} not found: install it before starting the guard in self-managed certificate mode`,
  );
}

/**
 * The Secret is owned by the webhook configuration it serves: `helm uninstall` (or any deletion of
 * the configuration) takes the Secret with it, though Helm never made it.
 */
async function webhookOwner(cluster: CertificateCluster, name: string): Promise<OwnerReference | undefined> {
  const config = await cluster.getWebhookConfiguration(name);
  if (config === null) throw missingWebhookConfiguration(name);
  const uid = config.metadata?.uid;
  return uid
    ? { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name, uid }
    : undefined;
}

async function reconcileSecret(
  cluster: CertificateCluster,
  options: SelfManagedOptions,
  now: Date,
  owner: OwnerReference | undefined,
): Promise<{ certs: GeneratedCertificates; action: EnsureResult['action'] } | null> {
  const existing = await cluster.getSecret(options.namespace, options.secretName);
  if (existing === null) {
    const certs = freshCertificates(options, now);
    try {
      await cluster.createSecret(
        options.namespace,
        certificateSecret({
          name: options.secretName,
          namespace: options.namespace,
          certs,
          ...(owner ? { owner } : {}),
        }),
      );
      return { certs, action: 'created' };
    } catch (err) {
      if (isConflict(err)) return null; // another replica created it first: read theirs
      throw err;
    }
  }
  const current = certificatesFromSecret(existing);
  const renewed = renewedCertificates(current, options, now);
  const owned = owner === undefined || existing.metadata.ownerReferences?.some((r) => r.uid === owner.uid);
  if (renewed === null && current !== null && owned) return { certs: current, action: 'reused' };
  // Not yet owned by the webhook configuration (a Secret from before owners were set): same certificates, owner added.
  const certs = renewed ?? current ?? freshCertificates(options, now);
  const resourceVersion = existing.metadata.resourceVersion;
  try {
    await cluster.replaceSecret(
      options.namespace,
      options.secretName,
      certificateSecret({
        name: options.secretName,
        namespace: options.namespace,
        certs,
        ...(resourceVersion !== undefined ? { resourceVersion } : {}),
        ...(owner ? { owner } : {}),
      }),
    );
    return { certs, action: current === null ? 'adopted' : renewed === null ? 'reused' : 'rotated' };
  } catch (err) {
    if (isConflict(err)) return null;
    throw err;
  }
}

async function ensureCaBundle(cluster: CertificateCluster, name: string, caPem: string): Promise<boolean> {
  const config = await cluster.getWebhookConfiguration(name);
  if (config === null) throw missingWebhookConfiguration(name);
  const patch = injectCaBundle(config, caPem);
  if (patch.length === 0) return false;
  await cluster.patchWebhookConfiguration(name, patch);
  return true;
}

export interface CertificateManager {
  /** The certificate currently served. */
  current(): GeneratedCertificates;
  /** Re-check now (also runs on the interval); calls onChange when the serving pair changed. */
  refresh(): Promise<void>;
  stop(): void;
}

/**
 * Runs ensureServingCertificate at start and then every intervalMs, handing each new serving
 * pair to onChange (e.g. server.setSecureContext) — including pairs another replica rotated.
 * Refresh errors go to onError and are retried on the next tick; the old certificate stays served.
 */
export async function startCertificateManager(
  cluster: CertificateCluster,
  options: SelfManagedOptions & {
    intervalMs?: number;
    onChange: (certs: GeneratedCertificates) => void;
    onError?: (err: unknown) => void;
  },
): Promise<CertificateManager> {
  let current = (await ensureServingCertificate(cluster, options)).certs;
  options.onChange(current);
  let running: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    running ??= (async () => {
      try {
        const next = (await ensureServingCertificate(cluster, options)).certs;
        if (next.cert !== current.cert || next.key !== current.key) {
          current = next;
          options.onChange(next);
        }
      } finally {
        running = null;
      }
    })();
    return running;
  };
  const timer = setInterval(
    () => {
      refresh().catch((err: unknown) => options.onError?.(err));
    },
    options.intervalMs ?? 15 * 60_000,
  );
  timer.unref();
  return { current: () => current, refresh, stop: () => clearInterval(timer) };
}
