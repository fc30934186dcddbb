import { createPrivateKey, X509Certificate } from 'node:crypto';
import type https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeCertificate,
  generateCertificates,
  issueServingCertificate,
  serialNumber,
  serviceDnsNames,
  splitPemBundle,
  type GeneratedCertificates,
} from '../../src/certs/generate.js';
import { closeServer, startHttpsServer, tlsGet } from './tls-helpers.js';

const DAY = 86_400_000;

describe('generateCertificates', () => {
  const now = new Date('2025-06-01T00:00:00Z');
  let certs: GeneratedCertificates;
  beforeAll(() => {
    certs = generateCertificates({
      service: 'airflow-downgrade-guard',
      namespace: 'guard-ns',
      now,
      dnsNames: ['localhost', '127.0.0.1'],
    });
  });

  it('makes a CA that can sign and a serving certificate it signed', () => {
    const ca = new X509Certificate(certs.caCert);
    const serving = new X509Certificate(certs.cert);
    expect(ca.ca).toBe(true);
    expect(serving.ca).toBe(false);
    expect(serving.checkIssued(ca)).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(serving.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth EKU
    expect(serving.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(serving.checkPrivateKey(createPrivateKey(certs.key))).toBe(true);
  });

  it('covers every name the Service is reached by, plus extra names and IPs', () => {
    const info = describeCertificate(certs.cert);
    for (const name of serviceDnsNames('airflow-downgrade-guard', 'guard-ns'))
      expect(info.subjectAltNames).toContain(`DNS:${name}`);
    expect(serviceDnsNames('svc', 'ns')).toEqual(['svc', 'svc.ns', 'svc.ns.svc', 'svc.ns.svc.cluster.local']);
    expect(info.subjectAltNames).toContain('DNS:localhost');
    expect(info.subjectAltNames).toContain('IP Address:127.0.0.1');
  });

  it('gives the CA 10 years and the serving certificate 1 year by default', () => {
    const ca = describeCertificate(certs.caCert);
    const serving = describeCertificate(certs.cert);
    expect(Math.round((ca.notAfter.getTime() - now.getTime()) / DAY)).toBe(3650);
    expect(Math.round((serving.notAfter.getTime() - now.getTime()) / DAY)).toBe(365);
    expect(serving.notBefore.getTime()).toBeLessThan(now.getTime()); // tolerates clock skew
  });

  it('never outlives its CA', () => {
    const ca = { cert: certs.caCert, key: certs.caKey };
    const late = new Date(now.getTime() + 3600 * DAY);
    const serving = issueServingCertificate({ service: 's', namespace: 'n', now: late, ca });
    expect(describeCertificate(serving.cert).notAfter.getTime()).toBeLessThanOrEqual(
      describeCertificate(certs.caCert).notAfter.getTime(),
    );
  });

  it('rejects names that are not DNS labels and odd validity', () => {
    expect(() => generateCertificates({ service: 'Bad_Name', namespace: 'ns' })).toThrow(/service must be a DNS label/);
    expect(() => generateCertificates({ service: 'svc', namespace: 'ns.sub' })).toThrow(
      /namespace must be a DNS label/,
    );
    expect(() => generateCertificates({ service: 'svc', namespace: 'ns', validityDays: 0 })).toThrow(/validity/);
    expect(() => generateCertificates({ service: 'svc', namespace: 'ns', dnsNames: ['not a name'] })).toThrow(
      /not a DNS name or IP/,
    );
  });

  it('splits a CA bundle into its certificates', () => {
    const other = generateCertificates({ service: 'x', namespace: 'y' });
    expect(splitPemBundle(certs.caCert + other.caCert)).toEqual([certs.caCert, other.caCert]);
    expect(splitPemBundle('')).toEqual([]);
  });
});

describe('a TLS client that trusts only the CA', () => {
  let certs: GeneratedCertificates;
  let server: https.Server;
  let port: number;
  beforeAll(async () => {
    certs = generateCertificates({
      service: 'airflow-downgrade-guard',
      namespace: 'guard-ns',
      dnsNames: ['localhost', '127.0.0.1'],
    });
    ({ server, port } = await startHttpsServer(certs));
  });
  afterAll(() => closeServer(server));

  it('connects by IP 127.0.0.1', async () => {
    expect((await tlsGet({ port, ca: certs.caCert })).status).toBe(200);
  });

  it('connects as localhost and as the service DNS name', async () => {
    expect((await tlsGet({ port, ca: certs.caCert, servername: 'localhost' })).status).toBe(200);
    expect((await tlsGet({ port, ca: certs.caCert, servername: 'airflow-downgrade-guard.guard-ns.svc' })).status).toBe(
      200,
    );
  });

  it('refuses a name the certificate does not cover', async () => {
    await expect(tlsGet({ port, ca: certs.caCert, servername: 'other.guard-ns.svc' })).rejects.toThrow(
      /altnames|Hostname/i,
    );
  });

  it('refuses the server when it trusts a different CA', async () => {
    const stranger = generateCertificates({ service: 'airflow-downgrade-guard', namespace: 'guard-ns' });
    await expect(tlsGet({ port, ca: stranger.caCert, servername: 'localhost' })).rejects.toThrow(
      /self-signed|unable to verify|certificate/i,
    );
  });
});

describe('certificate serial numbers', () => {
  // Regression: a serial whose first byte was 0x00 (then one below 0x80) is a non-minimal DER
  // INTEGER, which OpenSSL rejects ("illegal padding") when the certificate is loaded.
  it('are positive and minimally encoded: first byte 0x01-0x7f, every time', () => {
    for (let i = 0; i < 20_000; i++) {
      const first = parseInt(serialNumber().slice(0, 2), 16);
      expect(first).toBeGreaterThanOrEqual(0x01);
      expect(first).toBeLessThanOrEqual(0x7f);
    }
  });
});
