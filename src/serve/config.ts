// `serve` configuration: flags win over environment variables (the names the install manifests
// set, src/install/serve-contract.ts), which win over a config file (YAML or JSON). Validated at
// start: every problem is reported in one clear message and the process exits 2.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, guardConfigSchema, withUnknownVersionFlags, type GuardConfig } from '../core/config.js';
import { isJsonObject } from '../core/objects.js';
import { CERT_MODES, SERVE_ENV, TLS_MOUNT_PATH } from '../install/serve-contract.js';
import { ORDERS } from '../coordinator/operation.js';

const positiveMs = z.coerce.number().int().positive();
const DNS_NAME = /^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

export const serveConfigSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.coerce.number().int().min(0).max(65535).default(8443),
  certMode: z.enum(CERT_MODES).default('files'),
  tlsCertFile: z.string().optional(),
  tlsKeyFile: z.string().optional(),
  tlsSecretName: z.string().default('airflow-downgrade-guard-tls'),
  /** Extra subject names of the self-managed serving certificate (IP addresses become IP SANs), for a guard reached by URL. */
  certExtraNames: z
    .array(z.string().refine((name) => isIP(name) !== 0 || DNS_NAME.test(name), 'must be a DNS name or an IP address'))
    .default([]),
  serviceName: z.string().default('airflow-downgrade-guard'),
  webhookConfigurationName: z.string().default('airflow-downgrade-guard'),
  /**
   * How often the certificate source looks for a renewed pair; default 30 s for files (the kubelet
   * refreshes a mounted Secret about once a minute), 15 min for the self-managed Secret.
   */
  certificateCheckMs: positiveMs.optional(),
  kubeconfig: z.string().optional(),
  podNamespace: z.string().default('airflow-downgrade-guard'),
  identity: z.string().min(1),
  watchNamespaces: z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name')).default([]),
  auditDatabaseUrl: z.string().optional(),
  metadataDatabaseUrl: z.string().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  maxConcurrentExecs: z.coerce.number().int().min(1).max(64).default(4),
  /** Nice steps the coordinator (main) thread runs below the admission thread (Linux); 0 disables. */
  coordinatorNice: z.coerce.number().int().min(0).max(19).default(5),
  execTimeoutMs: positiveMs.default(15 * 60_000),
  drainTimeoutMs: positiveMs.default(10 * 60_000),
  /** A workload the rollout has not applied yet is scaled down by the guard only this long after the operation opened. */
  rolloutSettleMs: positiveMs.default(5_000),
  /** An operation waiting this long on something that may never come (Secret, database, exec pod, drain) is held. */
  stallTimeoutMs: positiveMs.default(10 * 60_000),
  /** drain-first (default): drain, downgrade in a runner pod, verify, release; downgrade-first: downgrade in a serving pod, then drain. */
  order: z.enum(ORDERS).default('drain-first'),
  leaseDurationSeconds: z.coerce.number().int().min(2).max(300).default(15),
  resyncMs: positiveMs.default(2_000),
  pollMs: positiveMs.default(250),
  guard: guardConfigSchema.default(guardConfigSchema.parse({})),
});

export type ServeConfig = z.infer<typeof serveConfigSchema> & { guard: GuardConfig };

export class ServeConfigError extends Error {
  override name = 'ServeConfigError';
}

type Flags = Record<string, unknown>;

function fromEnvironment(env: NodeJS.ProcessEnv): Flags {
  const out: Flags = {};
  const set = (key: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') out[key] = value;
  };
  set('certMode', env[SERVE_ENV.certMode]);
  set('tlsCertFile', env[SERVE_ENV.tlsCertFile]);
  set('tlsKeyFile', env[SERVE_ENV.tlsKeyFile]);
  set('tlsSecretName', env[SERVE_ENV.tlsSecretName]);
  set('serviceName', env[SERVE_ENV.serviceName]);
  set('webhookConfigurationName', env[SERVE_ENV.webhookConfigurationName]);
  set('auditDatabaseUrl', env[SERVE_ENV.auditDatabaseUrl]);
  set('port', env[SERVE_ENV.port]);
  set('logLevel', env[SERVE_ENV.logLevel]);
  set('podNamespace', env[SERVE_ENV.podNamespace]);
  set('identity', env[SERVE_ENV.podName]);
  set('metadataDatabaseUrl', env.ADG_METADATA_DATABASE_URL);
  set('kubeconfig', env.KUBECONFIG);
  const namespaces = env[SERVE_ENV.watchNamespaces];
  if (namespaces) out.watchNamespaces = splitList(namespaces);
  return out;
}

export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function fromFile(path: string): Flags {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ServeConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('top level must be a mapping');
    return parsed as Flags;
  } catch (error) {
    throw new ServeConfigError(`config file ${path} is not valid YAML/JSON: ${(error as Error).message}`);
  }
}

/** Merges file < environment < flags and validates the result. */
export function loadServeConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const file = typeof flags.config === 'string' ? fromFile(flags.config) : {};
  // --strict / --unknown-version are checked against each other and the file's guard settings below.
  const { config: _config, strict, unknownVersion, ...cliFlags } = flags;
  const definedFlags = Object.fromEntries(Object.entries(cliFlags).filter(([, v]) => v !== undefined));
  const merged: Flags = { identity: os.hostname(), ...file, ...fromEnvironment(env), ...definedFlags };
  if (definedFlags.trustedUsername !== undefined) {
    merged.guard = { ...((merged.guard as Flags | undefined) ?? {}), trustedUsernames: definedFlags.trustedUsername };
    delete merged.trustedUsername;
  }
  const result = serveConfigSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map(
      (i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`,
    );
    throw new ServeConfigError(`invalid serve configuration: ${problems.join('; ')}`);
  }
  const config = result.data as ServeConfig;
  try {
    config.guard = withUnknownVersionFlags(config.guard, {
      ...(strict === true ? { strict: true } : {}),
      ...(typeof unknownVersion === 'string' ? { unknownVersion } : {}),
    });
  } catch (error) {
    if (error instanceof ConfigError) throw new ServeConfigError(`invalid serve configuration: ${error.message}`);
    throw error;
  }
  // The admission path describes the plan in the order the coordinator follows: one setting, `order`.
  const guardOrder = isJsonObject(merged.guard) ? merged.guard.order : undefined;
  if (guardOrder !== undefined && guardOrder !== config.order) {
    throw new ServeConfigError(
      `invalid serve configuration: guard.order ${JSON.stringify(guardOrder)} conflicts with order ${config.order}; set order (--order) only`,
    );
  }
  config.guard = { ...config.guard, order: config.order };
  if (config.certMode === 'cert-manager') {
    // cert-manager writes the pair into the mounted Secret: read like files, from the mount by default.
    config.tlsCertFile ??= `${TLS_MOUNT_PATH}/tls.crt`;
    config.tlsKeyFile ??= `${TLS_MOUNT_PATH}/tls.key`;
  }
  if (config.certMode === 'files' && (!config.tlsCertFile || !config.tlsKeyFile)) {
    throw new ServeConfigError(
      `invalid serve configuration: certMode 'files' needs tlsCertFile and tlsKeyFile (--tls-cert-file/--tls-key-file or ${SERVE_ENV.tlsCertFile}/${SERVE_ENV.tlsKeyFile})`,
    );
  }
  // The guard's own patches (drain, release) must pass its webhook untouched.
  const self = `system:serviceaccount:${config.podNamespace}:${config.serviceName}`;
  if (!config.guard.trustedUsernames.includes(self))
    config.guard = { ...config.guard, trustedUsernames: [...config.guard.trustedUsernames, self] };
  return config;
}
