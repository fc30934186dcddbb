// Image versions from a real OCI registry (Debian's docker-registry, TLS on 127.0.0.1): labels of
// single- and multi-arch images by tag and digest, anonymous and with htpasswd credentials from a
// .dockerconfigjson, and `plan --registry-config` on private-tag manifests (exit 4 without, 3 with).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlan } from '../../src/cli/commands/plan.js';
import { parseImageReference, versionFromLabels, type ImageReference } from '../../src/core/images.js';
import { readImageConfig, RegistryError } from '../../src/registry/client.js';
import { registryAvailable, startRegistry, type TestRegistry } from '../../testbed/oci-registry.js';
import { renderChart } from '../plan/fixtures.js';

const AIRFLOW = (version: string) => ({
  'org.apache.airflow.version': version,
  'org.opencontainers.image.version': `build-${version}`,
});

function ref(text: string): ImageReference {
  const parsed = parseImageReference(text);
  if (!parsed) throw new Error(`bad reference ${text}`);
  return parsed;
}

// Skipped only outside CI when the docker-registry package is not installed; in CI a missing binary fails.
describe.runIf(registryAvailable() || process.env.CI !== undefined)('a real registry', () => {
  let open: TestRegistry;
  let locked: TestRegistry;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'adg-registry-test-'));
    [open, locked] = await Promise.all([
      startRegistry(),
      startRegistry({ auth: { username: 'ci', password: 's3cret:pw' } }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([open?.stop(), locked?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the labels of a single-arch image by tag and by digest, anonymously', async () => {
    const digest = await open.push('catalog-airflow-airflow', 'build-4711', { labels: AIRFLOW('2.9.3') });
    const byTag = await readImageConfig(ref(`${open.host}/catalog-airflow-airflow:build-4711`), { ca: [open.ca] });
    expect(byTag).toEqual({ digest, labels: AIRFLOW('2.9.3') });
    const byDigest = await readImageConfig(ref(`${open.host}/catalog-airflow-airflow@${digest}`), { ca: [open.ca] });
    expect(byDigest.labels['org.apache.airflow.version']).toBe('2.9.3');
  });

  it("reads through a configured mirror of the image's registry", async () => {
    await open.push('mirrored/airflow', 'build-9', { labels: AIRFLOW('3.0.3') });
    const config = await readImageConfig(ref('registry.corp.example:5000/mirrored/airflow:build-9'), {
      ca: [open.ca],
      mirrors: { 'registry.corp.example:5000': open.host },
    });
    expect(config.labels['org.apache.airflow.version']).toBe('3.0.3');
  });

  it('picks linux/amd64 from a multi-arch index', async () => {
    await open.push('multi', 'v1', {
      platforms: [
        { architecture: 'arm64', labels: AIRFLOW('9.9.9') },
        { architecture: 'amd64', labels: AIRFLOW('2.8.4') },
      ],
    });
    const config = await readImageConfig(ref(`${open.host}/multi:v1`), { ca: [open.ca] });
    expect(config.labels['org.apache.airflow.version']).toBe('2.8.4');
  });

  it('labels win over version text in a private tag; Bitnami-style OCI version labels count', async () => {
    await open.push('private', 'rel-agnostic-airflow-main-2.9.3', { labels: AIRFLOW('2.9.2') });
    const image = ref(`${open.host}/private:rel-agnostic-airflow-main-2.9.3`);
    const { labels } = await readImageConfig(image, { ca: [open.ca] });
    expect(versionFromLabels(image, labels)).toMatchObject({ known: true, version: { text: '2.9.2' } });
    expect(versionFromLabels(image, { 'org.opencontainers.image.version': '2.10.5-debian-12-r3' })).toMatchObject({
      known: true,
      version: { text: '2.10.5' },
    });
    expect(versionFromLabels(ref('apache/airflow:3.0.2'), AIRFLOW('1.0.0'))).toMatchObject({
      known: true,
      version: { text: '3.0.2' },
    });
  });

  it('with htpasswd: refused without credentials, read with those of a .dockerconfigjson', async () => {
    await locked.push('airflow', 'build-1', { labels: AIRFLOW('3.0.2') });
    const image = ref(`${locked.host}/airflow:build-1`);
    await expect(readImageConfig(image, { ca: [locked.ca] })).rejects.toThrow(/needs credentials/);
    const auth = Buffer.from('ci:s3cret:pw').toString('base64');
    const config = await readImageConfig(image, {
      ca: [locked.ca],
      dockerConfigs: [{ auths: { [locked.host]: { auth } } }],
    });
    expect(config.labels['org.apache.airflow.version']).toBe('3.0.2');
    await expect(
      readImageConfig(image, {
        ca: [locked.ca],
        dockerConfigs: [{ auths: { [locked.host]: { username: 'ci', password: 'wrong' } } }],
      }),
    ).rejects.toThrow(/HTTP 401/);
  });

  it('an untrusted certificate, a missing tag: a RegistryError naming the host', async () => {
    await expect(readImageConfig(ref(`${open.host}/catalog-airflow-airflow:build-4711`))).rejects.toBeInstanceOf(
      RegistryError,
    );
    await expect(readImageConfig(ref(`${open.host}/catalog-airflow-airflow:nope`), { ca: [open.ca] })).rejects.toThrow(
      /HTTP 404/,
    );
  });

  it('plan on private-tag manifests: exit 4 without registry access, 3 with --registry-config', async () => {
    await locked.push('catalog-airflow-airflow', 'rel-agnostic-airflow-main-2.8.4', { labels: AIRFLOW('2.8.4') });
    const manifests = join(dir, 'private.yaml');
    writeFileSync(
      manifests,
      renderChart({ version: '2.8.4' }).replaceAll(
        'apache/airflow:2.8.4',
        `${locked.host}/catalog-airflow-airflow:rel-agnostic-airflow-main-2.8.4`,
      ),
    );
    const dockerConfig = join(dir, 'config.json');
    writeFileSync(
      dockerConfig,
      JSON.stringify({ auths: { [locked.host]: { username: 'ci', password: 's3cret:pw' } } }),
    );
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, locked.ca);
    const run = async (extra: object) => {
      let stdout = '';
      let stderr = '';
      const code = await runPlan(
        { file: manifests, output: 'text', releaseVersion: '2.9.3', ...extra },
        { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdin: async () => '' },
      );
      return { code, stdout, stderr };
    };
    expect((await run({})).code).toBe(4);
    const resolved = await run({ registryConfig: dockerConfig, registryCaFile: caFile });
    expect(resolved.stderr).toContain(
      `image ${locked.host}/catalog-airflow-airflow:rel-agnostic-airflow-main-2.8.4: Airflow 2.8.4 (image labels)`,
    );
    expect(resolved.code).toBe(3);
    expect(resolved.stdout).toMatch(/DOWNGRADE 2\.9\.3 -> 2\.8\.4 \(schema 686269002441 -> 88344c1d9134\)/);
    expect(resolved.stderr).not.toContain('s3cret');
  });
});
