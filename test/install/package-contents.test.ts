// What ships: the npm package (`npm pack`) and the image's dist/ (the Dockerfile copies what
// `npm run build` compiles, tsconfig.build.json) hold the product only — no simulated cluster, demo,
// benchmark, testbed or test file (those live in the testbed workspace, testbed/, and test/).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** A path through a folder of the test cluster or the tests, or their build outputs. */
const NOT_PRODUCT = /(^|\/)(sim|demo|bench|testbed|test|dist-testbed|dist-cluster)(\/|$)|\.test\.|fixtures/;

describe('what ships', () => {
  it('npm pack: bin, the compiled product, deploy/ and the README; nothing of the testbed or the tests', () => {
    expect(existsSync(`${ROOT}/dist/src/cli/main.js`), 'dist/ is missing: run `npm run build` first').toBe(true);
    // --ignore-scripts: `prepare` would build first; the files are what matters here.
    const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(pack.status, pack.stderr).toBe(0);
    const [manifest] = JSON.parse(pack.stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
    expect(manifest!.name).toBe('airflow-downgrade-guard');
    const files = manifest!.files.map((f) => f.path);
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('dist/src/serve/admission-worker.js');
    expect(files).toContain('bin/airflow-downgrade-guard.js');
    expect(files.filter((f) => NOT_PRODUCT.test(f))).toEqual([]);
    expect(files.filter((f) => !/^(bin|dist\/src|deploy)\/|^(README\.md|package\.json)$/.test(f))).toEqual([]);
  });

  it("the image's dist/: npm run build compiles src/ and nothing else", () => {
    const list = spawnSync(
      process.execPath,
      [`${ROOT}/node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json', '--listFilesOnly'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(list.status, list.stderr).toBe(0);
    const ours = list.stdout
      .split('\n')
      .filter((f) => f && !f.includes('/node_modules/'))
      .map((f) => relative(ROOT, f));
    expect(ours).toContain('src/cli/main.ts');
    expect(ours.filter((f) => !f.startsWith('src/') || NOT_PRODUCT.test(f))).toEqual([]);
  });
});
