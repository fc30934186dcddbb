import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

// Validity choices: the CA lives long (10 years) because replacing it means re-publishing the
// webhook's caBundle; the serving certificate lives one year and is renewed well before expiry
// (self-managed mode renews 30 days ahead) with the same CA, so renewal never touches caBundle.
export const CA_VALIDITY_DAYS = 3650;
export const SERVING_VALIDITY_DAYS = 365;
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;
const CA_COMMON_NAME = 'airflow-downgrade-guard-ca';

export interface PemPair {
  cert: string;
  key: string;
}

export interface GeneratedCertificates {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertificateRequest {
  service: string;
  namespace: string;
  /** Serving certificate validity; default 365. */
  validityDays?: number;
  caValidityDays?: number;
  /** Extra SANs; IP addresses (e.g. 127.0.0.1 for local runs) become IP SANs. */
  dnsNames?: string[];
  now?: Date;
}

export interface ServingRequest extends CertificateRequest {
  ca: PemPair;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function assertDnsLabel(what: string, value: string): void {
  if (!DNS_LABEL.test(value)) {
    throw new Error(
      `${what} must be a DNS label (lowercase letters, digits, '-', at most 63 characters), got ${JSON.stringify(value)}`,
    );
  }
}

function assertValidityDays(what: string, days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new Error(`${what} must be a whole number of days between 1 and 36500, got ${days}`);
  }
}

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

function isDnsName(value: string): boolean {
  return (
    value.length <= 253 && value.split('.').every((label, i) => (i === 0 && label === '*') || DNS_LABEL.test(label))
  );
}

function splitSubjectAltNames(extra: string[]): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const name of extra) {
    if (isIP(name)) ips.push(name);
    else if (isDnsName(name)) dns.push(name);
    else throw new Error(`not a DNS name or IP address: ${JSON.stringify(name)}`);
  }
  return { dns, ips };
}

function newRsaKeyPair(): {
  publicKey: forge.pki.rsa.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
  privateKeyPem: string;
} {
  // Node's native generator: forge's pure-JS RSA key generation takes seconds.
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    privateKeyPem: privateKey,
  };
}

/**
 * A random certificate serial as forge takes it (hex). DER INTEGERs must be positive and minimally
 * encoded: a first byte of 0x00 followed by one below 0x80 is "illegal padding" to OpenSSL, and it
 * happened 1 time in 256 when only the sign bit was cleared. The first byte is 0x01-0x7f.
 */
export function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

// forge writes CRLF line ends; Node and kubectl write LF. Keep one form so PEMs compare and concatenate cleanly.
function certificatePem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

function setValidity(cert: forge.pki.Certificate, now: Date, days: number): void {
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

export function generateCa(options: { now?: Date; validityDays?: number } = {}): PemPair {
  const days = options.validityDays ?? CA_VALIDITY_DAYS;
  assertValidityDays('CA validity', days);
  const keys = newRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  setValidity(cert, options.now ?? new Date(), days);
  const subject = [{ name: 'commonName', value: CA_COMMON_NAME }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: certificatePem(cert), key: keys.privateKeyPem };
}

export function issueServingCertificate(request: ServingRequest): PemPair {
  assertDnsLabel('service', request.service);
  assertDnsLabel('namespace', request.namespace);
  const days = request.validityDays ?? SERVING_VALIDITY_DAYS;
  assertValidityDays('certificate validity', days);
  const extra = splitSubjectAltNames(request.dnsNames ?? []);
  const dnsNames = [...new Set([...serviceDnsNames(request.service, request.namespace), ...extra.dns])];

  const caCert = forge.pki.certificateFromPem(request.ca.cert);
  const caKey = forge.pki.privateKeyFromPem(request.ca.key);
  const keys = newRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  const now = request.now ?? new Date();
  setValidity(cert, now, days);
  if (cert.validity.notAfter > caCert.validity.notAfter) cert.validity.notAfter = caCert.validity.notAfter;
  cert.setSubject([{ name: 'commonName', value: `${request.service}.${request.namespace}.svc` }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...extra.ips.map((ip) => ({ type: 7, ip }))],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: certificatePem(cert), key: keys.privateKeyPem };
}

export function generateCertificates(request: CertificateRequest): GeneratedCertificates {
  const now = request.now ?? new Date();
  // Validate before spending time on keys.
  assertDnsLabel('service', request.service);
  assertDnsLabel('namespace', request.namespace);
  const ca = generateCa({
    now,
    ...(request.caValidityDays !== undefined ? { validityDays: request.caValidityDays } : {}),
  });
  const serving = issueServingCertificate({ ...request, now, ca });
  return { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
}

export interface CertificateInfo {
  subject: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  subjectAltNames: string[];
  fingerprint256: string;
}

export function describeCertificate(pem: string): CertificateInfo {
  const x509 = new X509Certificate(pem);
  return {
    subject: x509.subject,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    isCa: x509.ca,
    subjectAltNames: (x509.subjectAltName ?? '').split(', ').filter((s) => s.length > 0),
    fingerprint256: x509.fingerprint256,
  };
}

/** All certificates in a PEM bundle (a caBundle may hold the new and the previous CA). */
export function splitPemBundle(bundle: string): string[] {
  return (
    bundle
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)
      ?.map((c) => (c.endsWith('\n') ? c : `${c}\n`)) ?? []
  );
}
