import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeCertificate } from '../../src/certs/generate.js';
import { register, runCertsGenerate } from '../../src/cli/commands/certs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'adg-certs-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function program(): Command {
  const p = new Command('airflow-downgrade-guard').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
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
    const text = await runCertsGenerate({ service: 'guard', namespace: 'ops', out, days: 30, ip: ['127.0.0.1'], dns: ['localhost'] });
    for (const [file, mode] of [['ca.crt', 0o644], ['ca.key', 0o600], ['tls.crt', 0o644], ['tls.key', 0o600]] as const) {
      expect((await stat(join(out, file))).mode & 0o777).toBe(mode);
      expect(text).toContain(join(out, file));
    }
    const ca = await readFile(join(out, 'ca.crt'), 'utf8');
    expect(text).toContain(`caBundle: ${Buffer.from(ca).toString('base64')}`);
    expect(text).toContain('kubectl -n ops create secret generic airflow-downgrade-guard-tls --type=kubernetes.io/tls');
    const info = describeCertificate(await readFile(join(out, 'tls.crt'), 'utf8'));
    expect(info.subjectAltNames).toEqual(expect.arrayContaining(['DNS:guard.ops.svc', 'DNS:localhost', 'IP Address:127.0.0.1']));
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
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommanderError);
    expect((err as CommanderError).exitCode).toBe(2);
    expect((err as CommanderError).message).toMatch(message);
  });

  it('requires --out', async () => {
    const err = await program().parseAsync(['certs', 'generate'], { from: 'user' }).then(() => null, (e: unknown) => e);
    expect((err as CommanderError).code).toBe('commander.missingMandatoryOptionValue');
  });
});
