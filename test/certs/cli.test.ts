import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeCertificate } from '../../src/certs/generate.js';
import { register, runCertsGenerate, type CertsGenerateOptions } from '../../src/cli/commands/certs.js';
import { X509Certificate } from 'node:crypto';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'adg-certs-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function program(): Command {
  const p = new Command('airflow-downgrade-guard')
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(p);
  // exitOverride is not inherited by subcommands added before it was set on them.
  for (const c of p.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  }
  return p;
}

describe('certs generate', () => {
  it('writes the four files, keys 0600, and prints the Secret command and caBundle', async () => {
    const out = join(dir, 'a');
    const text = await runCertsGenerate({
      service: 'guard',
      namespace: 'ops',
      out,
      days: 30,
      ip: ['127.0.0.1'],
      dns: ['localhost'],
    });
    for (const [file, mode] of [
      ['ca.crt', 0o644],
      ['ca.key', 0o600],
      ['tls.crt', 0o644],
      ['tls.key', 0o600],
    ] as const) {
      expect((await stat(join(out, file))).mode & 0o777).toBe(mode);
      expect(text).toContain(join(out, file));
    }
    const ca = await readFile(join(out, 'ca.crt'), 'utf8');
    expect(text).toContain(`caBundle: ${Buffer.from(ca).toString('base64')}`);
    expect(text).toContain('kubectl -n ops create secret generic airflow-downgrade-guard-tls --type=kubernetes.io/tls');
    const info = describeCertificate(await readFile(join(out, 'tls.crt'), 'utf8'));
    expect(info.subjectAltNames).toEqual(
      expect.arrayContaining(['DNS:guard.ops.svc', 'DNS:localhost', 'IP Address:127.0.0.1']),
    );
  });

  it('runs through commander with defaults for service and namespace', async () => {
    const out = join(dir, 'b');
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await program().parseAsync(['certs', 'generate', '--out', out, '--ip', '127.0.0.1'], { from: 'user' });
    } finally {
      write.mockRestore();
    }
    const info = describeCertificate(await readFile(join(out, 'tls.crt'), 'utf8'));
    expect(info.subjectAltNames).toContain('DNS:airflow-downgrade-guard.airflow-downgrade-guard.svc.cluster.local');
    expect(Math.round((info.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(365);
  });

  it.each([
    [['--days', 'ten'], /whole number of days/],
    [['--days', '0'], /whole number of days/],
    [['--ip', 'localhost'], /not an IP address/],
    [['--service', 'Bad_Name'], /service must be a DNS label/],
  ])('exits 2 on bad values: %j', async (args, message) => {
    const err = await program()
      .parseAsync(['certs', 'generate', '--out', join(dir, 'c'), ...args], { from: 'user' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(CommanderError);
    expect((err as CommanderError).exitCode).toBe(2);
    expect((err as CommanderError).message).toMatch(message);
  });

  it('requires --out', async () => {
    const err = await program()
      .parseAsync(['certs', 'generate'], { from: 'user' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect((err as CommanderError).code).toBe('commander.missingMandatoryOptionValue');
  });
});

describe('certs generate never replaces a CA by accident', () => {
  const base = (out: string): CertsGenerateOptions => ({
    service: 'guard',
    namespace: 'ops',
    out,
    days: 30,
    ip: [],
    dns: [],
  });
  const read = (out: string, file: string) => readFile(join(out, file), 'utf8');

  it('refuses to overwrite without --force, and names the way to renew', async () => {
    const out = join(dir, 'keep');
    await runCertsGenerate(base(out));
    const ca = await read(out, 'ca.crt');
    await expect(runCertsGenerate(base(out))).rejects.toThrow(
      `${out} already holds ca.crt, ca.key, tls.crt, tls.key; a new CA would break every caBundle that trusts the current one. To renew the serving certificate: --ca-cert ${join(out, 'ca.crt')} --ca-key ${join(out, 'ca.key')}; to replace everything: --force`,
    );
    expect(await read(out, 'ca.crt')).toBe(ca);
    await runCertsGenerate({ ...base(out), force: true });
    expect(await read(out, 'ca.crt')).not.toBe(ca);
  });

  it('--ca-cert/--ca-key issue a new serving certificate from the existing CA: caBundle unchanged', async () => {
    const out = join(dir, 'renew');
    await runCertsGenerate(base(out));
    const [ca, caKey, oldCert] = await Promise.all([read(out, 'ca.crt'), read(out, 'ca.key'), read(out, 'tls.crt')]);
    const text = await runCertsGenerate({ ...base(out), caCert: join(out, 'ca.crt'), caKey: join(out, 'ca.key') });
    expect(text).not.toContain(join(out, 'ca.key'));
    const cert = await read(out, 'tls.crt');
    expect(cert).not.toBe(oldCert);
    expect(await read(out, 'ca.crt')).toBe(ca);
    expect(await read(out, 'ca.key')).toBe(caKey);
    expect(new X509Certificate(cert).verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(text).toContain(`caBundle: ${Buffer.from(ca).toString('base64')}`);
  });

  it("refuses a CA key that is not the CA certificate's, a certificate that is no CA, and half a pair", async () => {
    const one = join(dir, 'one');
    const two = join(dir, 'two');
    await runCertsGenerate(base(one));
    await runCertsGenerate(base(two));
    await expect(
      runCertsGenerate({ ...base(join(dir, 'x')), caCert: join(one, 'ca.crt'), caKey: join(two, 'ca.key') }),
    ).rejects.toThrow(`${join(two, 'ca.key')} is not the private key of ${join(one, 'ca.crt')}`);
    await expect(
      runCertsGenerate({ ...base(join(dir, 'x')), caCert: join(one, 'tls.crt'), caKey: join(one, 'tls.key') }),
    ).rejects.toThrow(`${join(one, 'tls.crt')} is not a CA certificate`);
    await expect(runCertsGenerate({ ...base(join(dir, 'x')), caCert: join(one, 'ca.crt') })).rejects.toThrow(
      '--ca-cert and --ca-key go together',
    );
    await expect(
      runCertsGenerate({ ...base(one), caCert: join(two, 'ca.crt'), caKey: join(two, 'ca.key') }),
    ).rejects.toThrow(
      `${join(one, 'ca.crt')} holds another CA than ${join(two, 'ca.crt')}; refusing to replace it without --force`,
    );
  });
});
