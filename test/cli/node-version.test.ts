import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem } from '../../bin/node-version.js';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/airflow-downgrade-guard.js');

describe('nodeVersionProblem', () => {
  it('names the required and the running major version', () => {
    expect(nodeVersionProblem('20.20.2')).toBe('airflow-downgrade-guard needs Node.js 24 or newer (this is 20.x)');
    expect(nodeVersionProblem('23.11.0')).toBe('airflow-downgrade-guard needs Node.js 24 or newer (this is 23.x)');
    expect(nodeVersionProblem('garbage')).toBe('airflow-downgrade-guard needs Node.js 24 or newer (this is "garbage")');
  });

  it('accepts 24 and newer', () => {
    expect(nodeVersionProblem('24.0.0')).toBeUndefined();
    expect(nodeVersionProblem('25.1.0')).toBeUndefined();
    expect(nodeVersionProblem(process.versions.node)).toBeUndefined();
  });
});

/** A Node.js older than 24 on the PATH (the machine's own, behind the pinned one npm puts first). */
function olderNode(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'node');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const version = spawnSync(candidate, ['-p', 'process.versions.node'], {
      encoding: 'utf8',
      timeout: 10_000,
    }).stdout.trim();
    if (Number.parseInt(version, 10) < 24) return candidate;
  }
  return undefined;
}

const older = olderNode();

// CI images carry an older Node.js (.ci/run installs the pinned 24 through npm), so this runs there.
describe.skipIf(!older)('the CLI under an older Node.js', () => {
  it('says which Node.js it needs and exits 2 before loading anything', () => {
    for (const args of [['--version'], ['plan', '-f', '-'], []]) {
      const result = spawnSync(older as string, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
      expect(result.status).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^airflow-downgrade-guard needs Node\.js 24 or newer \(this is \d+\.x\)\n$/);
    }
  });
});
