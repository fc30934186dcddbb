// The guard's decision configuration: which labels mark an Airflow release, what to do with unknown versions, and
// whose changes pass untouched. Validated with zod so a bad config file fails with one clear line.
import { z } from 'zod';

/** Every annotation the guard reads or writes starts with this prefix (fixed, not configurable). */
export const ANNOTATION_PREFIX = 'airflow-downgrade-guard/';

export const ANNOTATIONS = {
  /** Set by users: the Airflow version of a workload whose image tag does not say it. */
  airflowVersion: `${ANNOTATION_PREFIX}airflow-version`,
  /** Set by users: let this change through untouched; the value is the reason, kept for audit. */
  breakGlass: `${ANNOTATION_PREFIX}break-glass`,
  /** Set by the guard: JSON record of what the hold changed and the previous values. */
  hold: `${ANNOTATION_PREFIX}hold`,
  operation: `${ANNOTATION_PREFIX}operation`,
  fromVersion: `${ANNOTATION_PREFIX}from-version`,
  toVersion: `${ANNOTATION_PREFIX}to-version`,
  fromRevision: `${ANNOTATION_PREFIX}from-revision`,
  toRevision: `${ANNOTATION_PREFIX}to-revision`,
  /** Set by the coordinator's drain: JSON {operation, replicas | suspend} to restore on release. */
  drained: `${ANNOTATION_PREFIX}drained`,
  /**
   * Set by the webhook when a held object is changed back to its from-version: the operation it
   * returned from. The coordinator then moves the schema forward again instead of releasing.
   */
  returned: `${ANNOTATION_PREFIX}returned`,
  /**
   * Set by the webhook with a hold whose target version could not be told at admission: the image
   * the coordinator resolves (registry labels, else a probe pod) before it releases or downgrades.
   */
  resolve: `${ANNOTATION_PREFIX}resolve`,
  /** Set by the coordinator when a resolution turned a hold into a downgrade's: what it found, how, how long. */
  resolved: `${ANNOTATION_PREFIX}resolved`,
} as const;

/** Annotations the guard writes with a hold and removes when it releases one. */
export const HOLD_ANNOTATIONS: readonly string[] = [
  ANNOTATIONS.hold,
  ANNOTATIONS.operation,
  ANNOTATIONS.fromVersion,
  ANNOTATIONS.toVersion,
  ANNOTATIONS.fromRevision,
  ANNOTATIONS.toRevision,
  ANNOTATIONS.resolve,
  ANNOTATIONS.resolved,
];

// Kubernetes label keys: optional DNS prefix, then a name of at most 63 characters.
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelKey = z.string().regex(LABEL_KEY, 'must be a Kubernetes label key');
const REGISTRY_HOST = /^[A-Za-z0-9.-]{1,253}(?::\d{1,5})?$/;

const markerSchema = z.strictObject({
  key: labelKey,
  /** When omitted, the key being present is enough. */
  value: z.string().max(63).optional(),
});

/**
 * hold (default): held like a downgrade until the coordinator has resolved the version; allow:
 * admitted with a warning, no downgrade check; deny: refused.
 */
export const UNKNOWN_VERSION_POLICIES = ['hold', 'allow', 'deny'] as const;
export type UnknownVersionPolicy = (typeof UNKNOWN_VERSION_POLICIES)[number];

/**
 * drain-first: every database-touching workload is drained before the downgrade, which runs in a
 * runner pod of the newer version, so no pod ever runs on a schema it does not match.
 * downgrade-first: the downgrade runs in a serving pod of the newer version, then the drain; the
 * outage is shorter, but those pods run on the older schema until drained.
 */
export const ORDERS = ['drain-first', 'downgrade-first'] as const;
export type Order = (typeof ORDERS)[number];

export const guardConfigSchema = z
  .strictObject({
    labels: z
      .strictObject({
        /** Extra label keys that name the release, for hand-written manifests. */
        release: z.array(labelKey).default([]),
        /** Extra label keys that name the component. */
        component: z.array(labelKey).default([]),
        /** Extra labels that mark a workload as Airflow (needed together with release and component keys). */
        marker: z.array(markerSchema).default([]),
      })
      .default({ release: [], component: [], marker: [] }),
    /** Deprecated alias of `unknownVersion: deny`. */
    strict: z.boolean().default(false),
    /** A change whose Airflow version cannot be told: held until resolved (hold, default), admitted with a warning (allow) or denied (deny). */
    unknownVersion: z.enum(UNKNOWN_VERSION_POLICIES).optional(),
    /** Users whose changes pass untouched: the guard's own ServiceAccount, so its patches are not held again. */
    trustedUsernames: z.array(z.string().min(1).max(253)).default([]),
    /** The order of an operation's steps; `serve` sets it from its `order` (--order), `plan` reads it here. */
    order: z.enum(ORDERS).default('drain-first'),
    /** Reading image labels to resolve versions (unknownVersion: hold): registry mirrors and extra CAs. */
    registry: z
      .strictObject({
        /** Registry host -> mirror host read instead (e.g. docker.io -> mirror.corp:5000). */
        mirrors: z
          .record(
            z.string().regex(REGISTRY_HOST, 'must be a registry host'),
            z.string().regex(REGISTRY_HOST, 'must be a registry host'),
          )
          .default({}),
        /** PEM files of CAs trusted besides the system's. */
        caFiles: z.array(z.string().min(1)).default([]),
        /** How long a tag -> digest resolution is trusted (a digest's version never changes). */
        tagTtlMs: z
          .number()
          .int()
          .min(0)
          .default(5 * 60_000),
        /** How long a probe pod may take to start and answer `airflow version`. */
        probeTimeoutMs: z.number().int().min(1000).default(120_000),
      })
      .default({ mirrors: {}, caFiles: [], tagTtlMs: 5 * 60_000, probeTimeoutMs: 120_000 }),
  })
  .superRefine((config, ctx) => {
    if (config.strict && config.unknownVersion !== undefined && config.unknownVersion !== 'deny') {
      ctx.addIssue({
        code: 'custom',
        path: ['unknownVersion'],
        message: `strict: true (deprecated alias of unknownVersion: deny) conflicts with unknownVersion: ${config.unknownVersion}`,
      });
    }
  });

export type GuardConfig = z.infer<typeof guardConfigSchema>;
export type GuardConfigInput = z.input<typeof guardConfigSchema>;

/** What to do with a change whose Airflow version cannot be told; `strict` is the deprecated alias of deny. */
export function unknownVersionPolicy(config: GuardConfig): UnknownVersionPolicy {
  return config.strict ? 'deny' : (config.unknownVersion ?? 'hold');
}

/**
 * The command line's `--unknown-version` and deprecated `--strict` over a configuration: both
 * given with different values, or a flag contradicting the file, is a ConfigError.
 */
export function withUnknownVersionFlags(
  config: GuardConfig,
  flags: { strict?: boolean; unknownVersion?: string },
): GuardConfig {
  const { strict, unknownVersion } = flags;
  if (unknownVersion !== undefined && !(UNKNOWN_VERSION_POLICIES as readonly string[]).includes(unknownVersion)) {
    throw new ConfigError(
      `--unknown-version must be one of ${UNKNOWN_VERSION_POLICIES.join(', ')}, not ${JSON.stringify(unknownVersion.slice(0, 40))}`,
    );
  }
  if (strict && unknownVersion !== undefined && unknownVersion !== 'deny') {
    throw new ConfigError(
      `--strict (deprecated alias of --unknown-version deny) conflicts with --unknown-version ${unknownVersion}`,
    );
  }
  const wanted = strict ? 'deny' : (unknownVersion as UnknownVersionPolicy | undefined);
  if (wanted === undefined) return config;
  const fromFile = config.strict ? 'deny' : config.unknownVersion;
  if (fromFile !== undefined && fromFile !== wanted) {
    throw new ConfigError(
      `--${strict ? 'strict' : `unknown-version ${wanted}`} conflicts with the configuration's unknownVersion ${fromFile}`,
    );
  }
  return { ...config, strict: false, unknownVersion: wanted };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULT_CONFIG: GuardConfig = Object.freeze(guardConfigSchema.parse({})) as GuardConfig;

/** Validates a config object (e.g. parsed from YAML/JSON); throws ConfigError with one line per problem. */
export function parseGuardConfig(input: unknown): GuardConfig {
  const result = guardConfigSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `${where}: ${issue.message}`;
  });
  throw new ConfigError(`invalid guard configuration: ${problems.join('; ')}`);
}
