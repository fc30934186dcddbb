import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateCa, issueServingCertificate } from '../../src/certs/generate.js';
import { fileCertificateSource, type CertificateSource, type ServingPair } from '../../src/certs/source.js';

const ca = generateCa();
const issue = () =>
  issueServingCertificate({ service: 'airflow-downgrade-guard', namespace: 'guard', dnsNames: ['localhost'], ca });

describe('the files certificate source', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function filesDir(): Promise<{ certFile: string; keyFile: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'adg-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  }

  function started(source: CertificateSource): CertificateSource {
    cleanups.push(async () => source.stop());
    return source;
  }

  it('starts with the pair on disk and hands on each renewed pair once', async () => {
    const files = await filesDir();
    const first = issue();
    await writeFile(files.certFile, first.cert);
    await writeFile(files.keyFile, first.key);
    const renewed: ServingPair[] = [];
    const errors: unknown[] = [];
    const source = started(fileCertificateSource(files, { intervalMs: 20, onError: (e) => errors.push(e) }));

    expect(await source.start((pair) => renewed.push(pair))).toEqual({ cert: first.cert, key: first.key });
    const second = issue();
    await writeFile(files.certFile, second.cert);
    await writeFile(files.keyFile, second.key);
    await vi.waitFor(() => expect(renewed.at(-1)).toEqual({ cert: second.cert, key: second.key }), {
      timeout: 5000,
      interval: 20,
    });
    // Unchanged files are not handed on again.
    const seen = renewed.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(renewed).toHaveLength(seen);
    expect(renewed.every((p) => p.cert !== first.cert)).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a pair that cannot be read at start is a clear error', async () => {
    const files = await filesDir();
    const source = started(fileCertificateSource(files, { intervalMs: 20, onError: () => {} }));
    await expect(source.start(() => {})).rejects.toThrow(
      /^cannot read the serving certificate: .*ENOENT.*tls\.(crt|key)/,
    );
  });

  it('files gone after start are reported and the current pair stays; they are picked up when back', async () => {
    const files = await filesDir();
    const first = issue();
    await writeFile(files.certFile, first.cert);
    await writeFile(files.keyFile, first.key);
    const renewed: ServingPair[] = [];
    const errors: unknown[] = [];
    const source = started(fileCertificateSource(files, { intervalMs: 20, onError: (e) => errors.push(e) }));
    await source.start((pair) => renewed.push(pair));
    await rm(files.keyFile);
    await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 5000, interval: 20 });
    expect(String(errors[0])).toMatch(/ENOENT/);
    expect(renewed).toEqual([]);
    const second = issue();
    await writeFile(files.certFile, second.cert);
    await writeFile(files.keyFile, second.key);
    await vi.waitFor(() => expect(renewed.at(-1)?.cert).toBe(second.cert), { timeout: 5000, interval: 20 });
  });
});
