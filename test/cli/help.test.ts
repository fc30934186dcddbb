// Help texts users read first (issue 16): complete, each default once, messages naming the right thing.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CERT_MODES } from '../../src/install/serve-contract.js';

const root = new URL('../../', import.meta.url).pathname;

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, 'bin/airflow-downgrade-guard.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('help and messages', () => {
  it('serve --help lists every --cert-mode', () => {
    const help = cli('serve', '--help').stdout.replace(/\s+/g, ' ');
    for (const mode of CERT_MODES) expect(help).toContain(mode);
    expect(help).toContain(CERT_MODES.join(' | '));
  });

  it('no option in any help prints its default twice', () => {
    const commands = ['serve', 'review', 'plan', 'audit', 'status', 'retry', 'abort', 'certs', 'manifests', 'wait'];
    for (const command of commands) {
      const help = cli(command, '--help').stdout.replace(/\s+/g, ' ');
      const options = help.split(/ (?=--?[a-z])/);
      for (const option of options)
        expect((option.match(/\(default/g) ?? []).length, `${command}: ${option}`).toBeLessThanOrEqual(1);
    }
  });

  it('audit names the audit database when its URL is bad', () => {
    const { code, stderr } = cli('audit', '--database-url', 'notaurl');
    expect(code).toBe(2);
    expect(stderr).toBe(
      "error: invalid audit database URL 'notaurl': scheme '(none)' is not PostgreSQL (expected postgresql://, postgresql+psycopg2:// or postgres://)\n",
    );
  });
});
