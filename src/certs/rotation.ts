import { X509Certificate } from 'node:crypto';
import type { Operation } from 'fast-json-patch';
import type { GeneratedCertificates } from './generate.js';

const DAY_MS = 86_400_000;
/** Serving certificates are renewed this long before they expire. */
export const DEFAULT_RENEW_BEFORE_MS = 30 * DAY_MS;
/** The CA is replaced this long before it expires (the old one stays in caBundle meanwhile). */
export const DEFAULT_CA_RENEW_BEFORE_MS = 400 * DAY_MS;

/** True when the certificate is unreadable, not yet valid, or expires within renewBeforeMs of now. */
export function needsRotation(certPem: string, now: Date, renewBeforeMs: number = DEFAULT_RENEW_BEFORE_MS): boolean {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch {
    return true;
  }
  const notBefore = Date.parse(x509.validFrom);
  const notAfter = Date.parse(x509.validTo);
  return now.getTime() < notBefore || now.getTime() >= notAfter - renewBeforeMs;
}

/** When a certificate enters its renewal window. */
export function rotationDueAt(certPem: string, renewBeforeMs: number = DEFAULT_RENEW_BEFORE_MS): Date {
  return new Date(Date.parse(new X509Certificate(certPem).validTo) - renewBeforeMs);
}

export interface SecretObject {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
  };
  type: string;
  data: Record<string, string>;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export const SECRET_KEYS = { cert: 'tls.crt', key: 'tls.key', caCert: 'ca.crt', caKey: 'ca.key' } as const;

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string): string => Buffer.from(text, 'base64').toString('utf8');

/**
 * The serving-certificate Secret. `ca.crt` may hold several CAs (new first, then the one being
 * retired); `ca.key` is kept so any replica can renew the serving certificate with the same CA.
 */
export function certificateSecret(options: {
  name: string;
  namespace: string;
  certs: GeneratedCertificates;
  resourceVersion?: string;
  labels?: Record<string, string>;
  /** The webhook configuration: the Secret goes with it (garbage collection). */
  owner?: OwnerReference;
}): SecretObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: options.name,
      namespace: options.namespace,
      ...(options.resourceVersion !== undefined ? { resourceVersion: options.resourceVersion } : {}),
      labels: {
        'app.kubernetes.io/name': 'airflow-downgrade-guard',
        'app.kubernetes.io/component': 'serving-certificate',
        ...options.labels,
      },
      ...(options.owner ? { ownerReferences: [options.owner] } : {}),
    },
    type: 'kubernetes.io/tls',
    data: {
      [SECRET_KEYS.cert]: b64(options.certs.cert),
      [SECRET_KEYS.key]: b64(options.certs.key),
      [SECRET_KEYS.caCert]: b64(options.certs.caCert),
      [SECRET_KEYS.caKey]: b64(options.certs.caKey),
    },
  };
}

/** Reads the PEMs back out of a Secret; null when a key is missing (e.g. a Secret made by hand without ca.key). */
export function certificatesFromSecret(secret: {
  data?: Record<string, string> | undefined;
}): GeneratedCertificates | null {
  const data = secret.data ?? {};
  const cert = data[SECRET_KEYS.cert];
  const key = data[SECRET_KEYS.key];
  const caCert = data[SECRET_KEYS.caCert];
  const caKey = data[SECRET_KEYS.caKey];
  if (!cert || !key || !caCert || !caKey) return null;
  return { cert: unb64(cert), key: unb64(key), caCert: unb64(caCert), caKey: unb64(caKey) };
}

interface WebhookConfigurationLike {
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

/**
 * JSON patch that sets caBundle on every webhook of the configuration; empty when already set.
 * Each change is preceded by a `test` of the webhook's name so a concurrent reorder fails the
 * patch instead of writing the bundle into the wrong entry.
 */
export function injectCaBundle(webhookConfig: WebhookConfigurationLike, caPem: string): Operation[] {
  const caBundle = b64(caPem);
  const ops: Operation[] = [];
  (webhookConfig.webhooks ?? []).forEach((webhook, i) => {
    if (webhook.clientConfig?.caBundle === caBundle) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: webhook.name });
    if (webhook.clientConfig === undefined) {
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig`, value: { caBundle } });
    } else {
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle });
    }
  });
  return ops;
}
