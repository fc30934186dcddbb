// `serve` configuration: flags > ADG_* environment > --config file, validated with one clear message.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServeConfig, ServeConfigError } from '../../src/serve/config.js';

const TLS = { tlsCertFile: '/tls/tls.crt', tlsKeyFile: '/tls/tls.key' };

const dir = mkdtempSync(path.join(os.tmpdir(), 'adg-serve-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function configFile(text: string): string {
  const file = path.join(dir, `config-${files++}.yaml`);
  writeFileSync(file, text);
  return file;
}

function problem(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ServeConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('serve configuration', () => {
  it('has the documented defaults, and trusts its own ServiceAccount', () => {
    const config = loadServeConfig({ ...TLS }, {});
    expect(config).toMatchObject({
      port: 8443,
      maxConcurrentExecs: 4,
      coordinatorNice: 5,
      leaseDurationSeconds: 15,
      logLevel: 'info',
      watchNamespaces: [],
    });
    expect(config.identity).toBe(os.hostname());
    expect(config.guard.trustedUsernames).toContain(
      'system:serviceaccount:airflow-downgrade-guard:airflow-downgrade-guard',
    );
  });

  it('takes extra serving-certificate names for a guard registered by URL (self-managed mode)', () => {
    expect(
      loadServeConfig({ certMode: 'self-managed', certExtraNames: ['127.0.0.1', 'guard.example.com'] }, {})
        .certExtraNames,
    ).toEqual(['127.0.0.1', 'guard.example.com']);
    expect(loadServeConfig({ ...TLS }, {}).certExtraNames).toEqual([]);
  });

  it('takes flags over the environment over the file', () => {
    const file = configFile('port: 9001\nlogLevel: debug\nmaxConcurrentExecs: 2\ncoordinatorNice: 3\n');
    const fromFile = loadServeConfig({ config: file, ...TLS }, {});
    expect(fromFile).toMatchObject({ port: 9001, logLevel: 'debug', maxConcurrentExecs: 2, coordinatorNice: 3 });
    const env = { ADG_PORT: '9002', ADG_LOG_LEVEL: 'warn' };
    expect(loadServeConfig({ config: file, ...TLS }, env)).toMatchObject({
      port: 9002,
      logLevel: 'warn',
      maxConcurrentExecs: 2,
    });
    expect(loadServeConfig({ config: file, ...TLS, port: '9003', coordinatorNice: '0' }, env)).toMatchObject({
      port: 9003,
      logLevel: 'warn',
      coordinatorNice: 0,
    });
  });

  it.each([
    [{ coordinatorNice: '20' }, /coordinatorNice: .*19/],
    [{ coordinatorNice: '-1' }, /coordinatorNice: .*0/],
    [{ maxConcurrentExecs: '0' }, /maxConcurrentExecs/],
    [{ port: 'https' }, /port/],
    [{ logLevel: 'loud' }, /logLevel/],
    [{ certExtraNames: ['127.0.0.1', 'not a name'] }, /certExtraNames\.1: must be a DNS name or an IP address/],
  ])('refuses %j with a message naming the setting', (flags, message) => {
    const text = problem(() => loadServeConfig({ ...TLS, ...flags }, {}));
    expect(text).toMatch(/^invalid serve configuration: /);
    expect(text).toMatch(message);
  });

  it('says what is missing for file certificates, and what is wrong with a config file', () => {
    expect(problem(() => loadServeConfig({}, {}))).toMatch(/needs tlsCertFile and tlsKeyFile/);
    expect(problem(() => loadServeConfig({ config: '/nonexistent/adg.yaml', ...TLS }, {}))).toMatch(
      /^cannot read config file \/nonexistent\/adg.yaml/,
    );
    expect(problem(() => loadServeConfig({ config: configFile('- a list\n'), ...TLS }, {}))).toMatch(
      /top level must be a mapping/,
    );
    expect(problem(() => loadServeConfig({ config: configFile('unknownKey: 1\n'), ...TLS }, {}))).toMatch(
      /unknownKey|Unrecognized/,
    );
  });

  it('--order reaches the admission path (guard.order), so the plan warnings describe the order the coordinator follows', () => {
    expect(loadServeConfig({ ...TLS }, {}).guard.order).toBe('drain-first');
    expect(loadServeConfig({ ...TLS, order: 'downgrade-first' }, {})).toMatchObject({
      order: 'downgrade-first',
      guard: { order: 'downgrade-first' },
    });
    expect(
      loadServeConfig({ config: configFile('order: downgrade-first\nguard:\n  order: downgrade-first\n'), ...TLS }, {})
        .guard.order,
    ).toBe('downgrade-first');
    expect(
      problem(() => loadServeConfig({ config: configFile('guard:\n  order: downgrade-first\n'), ...TLS }, {})),
    ).toMatch(/guard.order "downgrade-first" conflicts with order drain-first; set order \(--order\) only/);
  });

  it('--unknown-version and --strict (its deprecated alias of deny) set guard.unknownVersion; contradictions exit 2', () => {
    expect(loadServeConfig({ ...TLS, unknownVersion: 'deny' }, {}).guard.unknownVersion).toBe('deny');
    expect(loadServeConfig({ ...TLS, strict: true }, {}).guard.unknownVersion).toBe('deny');
    expect(
      loadServeConfig({ config: configFile('guard:\n  unknownVersion: deny\n'), ...TLS }, {}).guard.unknownVersion,
    ).toBe('deny');
    expect(problem(() => loadServeConfig({ ...TLS, strict: true, unknownVersion: 'allow' }, {}))).toMatch(
      /^invalid serve configuration: --strict .* conflicts with --unknown-version allow$/,
    );
    expect(
      problem(() =>
        loadServeConfig({ config: configFile('guard:\n  strict: true\n'), ...TLS, unknownVersion: 'allow' }, {}),
      ),
    ).toMatch(/conflicts with the configuration's unknownVersion deny/);
    expect(
      problem(() =>
        loadServeConfig({ config: configFile('guard:\n  strict: true\n  unknownVersion: allow\n'), ...TLS }, {}),
      ),
    ).toMatch(/guard\.unknownVersion: strict: true/);
  });
});
