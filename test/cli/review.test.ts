import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePatch } from '../../src/core/response.js';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/airflow-downgrade-guard.js');
const fixtures = join(root, 'test/fixtures/admission');
const node = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), 'adg-review-'));

function newestMtime(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs),
  );
}

/** `npm test` builds first; when run alone, build if dist is older than the sources it runs. */
function ensureBuilt(): void {
  const built = join(root, 'dist/src/cli/commands/review.js');
  let builtAt = 0;
  try {
    builtAt = statSync(built).mtimeMs;
  } catch {
    // not built yet
  }
  const sources = Math.max(newestMtime(join(root, 'src/core')), newestMtime(join(root, 'src/cli')));
  if (builtAt >= sources) return;
  // Other areas' type errors must not stop the emit our files need.
  spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'ignore' });
}

function cli(args: string[], input?: string) {
  const result = spawnSync(node, [bin, ...args], { cwd: root, input, encoding: 'utf8', timeout: 60_000 }); // a safety net, not a condition: a loaded machine starts Node slowly
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => ensureBuilt(), 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('review', () => {
  it('prints the webhook response for a Helm downgrade of the scheduler', () => {
    const { code, stdout, stderr } = cli([
      'review',
      '--file',
      join(fixtures, 'helm-upgrade-scheduler-3.1.0-to-3.0.2.json'),
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.endsWith('\n')).toBe(true);
    const review = JSON.parse(stdout);
    expect(review).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000001', allowed: true, patchType: 'JSONPatch' },
    });
    expect(decodePatch(review.response)).toContainEqual({ op: 'add', path: '/spec/paused', value: true });
    expect(review.response.warnings[0]).toMatch(/DOWNGRADE of release airflow from 3\.1\.0 to 3\.0\.2/);
  });

  it('uses --release-version / --db-revision for the pre-upgrade migration Job, reading stdin', () => {
    const job = readFileSync(join(fixtures, 'helm-pre-upgrade-migration-job-3.0.2.json'), 'utf8');
    const withVersion = JSON.parse(cli(['review', '--file', '-', '--release-version', '3.1.0'], job).stdout);
    expect(decodePatch(withVersion.response)).toContainEqual({ op: 'add', path: '/spec/suspend', value: true });
    const withRevision = JSON.parse(cli(['review', '--file', '-', '--db-revision', 'cc92b33c6709'], job).stdout);
    expect(withRevision.response.patch).toBe(withVersion.response.patch);
    const sameHead = JSON.parse(cli(['review', '--file', '-', '--db-revision', '29ce7909c52b'], job).stdout);
    expect(sameHead.response).toEqual({ uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000002', allowed: true });
  });

  it('answers the hold by default, exit 0 with a denial in strict mode, from the flag or a config file', () => {
    const file = join(fixtures, 'kubectl-set-image-scheduler-latest.json');
    const held = JSON.parse(cli(['review', '--file', file]).stdout).response;
    expect(held).toMatchObject({
      allowed: true,
      patchType: 'JSONPatch',
      warnings: [
        expect.stringMatching(/moving tag.*held until its version is resolved/),
        expect.any(String),
        expect.any(String),
      ],
    });
    expect(Buffer.from(held.patch, 'base64').toString('utf8')).toMatch(
      /airflow-downgrade-guard~1resolve","value":"apache\/airflow:latest"/,
    );
    const lax = cli(['review', '--file', file, '--unknown-version', 'allow']);
    expect(JSON.parse(lax.stdout).response).toMatchObject({
      allowed: true,
      warnings: [expect.stringMatching(/moving tag/), expect.any(String)],
    });
    const denied = cli(['review', '--file', file, '--strict']);
    expect(denied.code).toBe(0);
    expect(JSON.parse(denied.stdout).response).toMatchObject({ allowed: false, status: { code: 403 } });
    const config = join(tmp, 'guard.yaml');
    writeFileSync(config, 'strict: true\ntrustedUsernames: [system:serviceaccount:adg:adg]\n');
    expect(JSON.parse(cli(['review', '--file', file, '--config', config]).stdout).response.allowed).toBe(false);
  });

  it('--unknown-version deny denies like --strict; the two contradicting each other exit 2', () => {
    const file = join(fixtures, 'kubectl-set-image-scheduler-latest.json');
    expect(JSON.parse(cli(['review', '--file', file, '--unknown-version', 'deny']).stdout).response).toMatchObject({
      allowed: false,
      status: { code: 403 },
    });
    expect(JSON.parse(cli(['review', '--file', file, '--unknown-version', 'allow']).stdout).response.allowed).toBe(
      true,
    );
    const conflict = cli(['review', '--file', file, '--strict', '--unknown-version', 'allow']);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(
      /--strict \(deprecated alias of --unknown-version deny\) conflicts with --unknown-version allow/,
    );
  });

  it('accepts an audit record holding the AdmissionReview', () => {
    const review = JSON.parse(
      readFileSync(join(fixtures, 'helm-upgrade-worker-statefulset-3.1.0-to-3.0.2.json'), 'utf8'),
    );
    const record = join(tmp, 'record.json');
    writeFileSync(record, JSON.stringify({ uid: review.request.uid, decision: 'downgrade', admissionReview: review }));
    const direct = cli(['review', '--file', join(fixtures, 'helm-upgrade-worker-statefulset-3.1.0-to-3.0.2.json')]);
    expect(cli(['review', '--file', record]).stdout).toBe(direct.stdout);
  });

  it('--explain prints the decision on stderr, stdout unchanged', () => {
    const file = join(fixtures, 'helm-upgrade-database-cleanup-cronjob-3.1.0-to-3.0.2.json');
    const { stdout, stderr } = cli(['review', '--file', file, '--explain']);
    expect(stdout).toBe(cli(['review', '--file', file]).stdout);
    expect(JSON.parse(stderr)).toMatchObject({
      kind: 'downgrade',
      plan: { argv: ['airflow', 'db', 'downgrade', '--to-revision', '29ce7909c52b', '--yes'] },
    });
  });

  it.each([
    [['review', '--file', '/nonexistent/review.json'], undefined, /cannot read \/nonexistent\/review\.json: ENOENT/],
    [['review', '--file', '-'], '{"apiVersion": ', /stdin is not valid JSON/],
    [['review', '--file', '-'], '{"apiVersion":"v1","kind":"ConfigMap"}', /invalid AdmissionReview: apiVersion/],
    [
      ['review', '--file', '-', '--release-version', '3.1.0; rm -rf /'],
      '{}',
      /--release-version .* is not an Airflow version/,
    ],
    [['review', '--file', '-', '--db-revision', 'DROP TABLE'], '{}', /--db-revision .* is not an alembic revision/],
    [['review'], undefined, /required option '-f, --file <path>'/],
  ])('exit 2 with a one-line reason: %j', (args, input, message) => {
    const { code, stdout, stderr } = cli(args as string[], input as string | undefined);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });

  it('a review the webhook would refuse as too large (413) is refused the same way, naming the limit', () => {
    const review = JSON.parse(readFileSync(join(fixtures, 'helm-upgrade-scheduler-3.1.0-to-3.0.2.json'), 'utf8'));
    const padded = (bytes: number) => {
      const copy = structuredClone(review);
      copy.request.object.metadata.annotations = {
        ...copy.request.object.metadata.annotations,
        padding: 'x'.repeat(bytes),
      };
      return JSON.stringify(copy);
    };
    const big = join(tmp, 'big-review.json');
    writeFileSync(big, padded(5 * 1024 * 1024));
    const refused = cli(['review', '--file', big]);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(
      /^error: the AdmissionReview is \d+ bytes: the webhook refuses requests over its 3145728 byte \(3 MiB\) limit with 413 Payload Too Large/,
    );
    writeFileSync(big, padded(3 * 1024 * 1024 - 64 * 1024));
    expect(cli(['review', '--file', big]).code).toBe(0);
  });

  it('a bad config file is invalid input', () => {
    const config = join(tmp, 'bad.yaml');
    writeFileSync(config, 'strict: maybe\n');
    const { code, stderr } = cli([
      'review',
      '--file',
      join(fixtures, 'helm-upgrade-pgbouncer.json'),
      '--config',
      config,
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/invalid guard configuration: strict/);
  });
});

describe('program', () => {
  it('--help lists review, --version prints the package version', () => {
    const help = cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/review \[options\]/);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(cli(['--version']).stdout.trim()).toBe(pkg.version);
  });

  it('runs the same through node dist/src/cli/main.js', () => {
    const out = execFileSync(
      node,
      [join(root, 'dist/src/cli/main.js'), 'review', '--file', join(fixtures, 'helm-upgrade-pgbouncer.json')],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out).response).toEqual({ uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000006', allowed: true });
  });
});
