// What a Coordinator is built with: its options (flags of `serve`), the hooks it reports to, and
// the adapters it drives the cluster and the database through.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { GuardConfig } from '../core/config.js';
import type { Cluster } from '../k8s/cluster.js';
import type { ExecRunner } from '../k8s/exec.js';
import type { KubeRest } from '../k8s/rest.js';
import type { OperationState, Order } from './operation.js';
import type { RegistryOptions } from '../registry/client.js';
import type { ResolutionRecord } from './resolution.js';
import type { StepReport } from './steps/context.js';

export interface CoordinatorOptions {
  config: GuardConfig;
  /** This replica's name, written into Leases. */
  identity: string;
  /** Namespaces to watch; empty = all. */
  namespaces: string[];
  leaseDurationSeconds: number;
  execTimeoutMs: number;
  maxConcurrentExecs: number;
  /** After this long waiting for old pods to go, they are deleted; after twice it, force-deleted. */
  drainTimeoutMs: number;
  /**
   * A workload the rollout has not applied yet is scaled down by the guard only this long after the
   * operation opened (steps/drain.ts): a server-side apply arriving after the guard's would conflict.
   */
  rolloutSettleMs: number;
  /** How often every open operation is looked at even without a watch event. */
  resyncMs: number;
  /** How long to wait between attempts of a step that waits (pods starting, DB retries). */
  pollMs: number;
  /** Written into each new operation: drain before the downgrade (no pod on a schema it does not match), or after it. */
  order: Order;
  /** Attempts of `confirm` while the metadata DB is unreachable before the release stays held. */
  confirmAttempts: number;
  /**
   * A wait on something that may never come (a Secret, the database, a pod to exec in, a drain) is
   * reported at once (Warning Event, `stalled` in the record); after this long the operation is held.
   */
  stallTimeoutMs: number;
  /**
   * The metadata DB of a release when its pod specs do not say (metadata-url.ts): Secret
   * `<release>-metadata`, key `connection`, the official chart's default.
   */
  metadataSecretName: (release: string) => string;
  metadataSecretKey: string;
  /** Used for every release without the per-release override annotation, e.g. for a DB reached through another address. */
  databaseUrlOverride?: string;
  /** Resolving versions of images held for a resolution: registry mirrors and CAs, probe pod bound, tag TTL. */
  imageResolution?: { registry?: Omit<RegistryOptions, 'dockerConfigs'>; probeTimeoutMs?: number; tagTtlMs?: number };
}

export const DEFAULT_COORDINATOR_OPTIONS: Omit<CoordinatorOptions, 'config' | 'identity'> = {
  namespaces: [],
  leaseDurationSeconds: 15,
  execTimeoutMs: 15 * 60_000,
  maxConcurrentExecs: 4,
  drainTimeoutMs: 10 * 60_000,
  rolloutSettleMs: 5_000,
  resyncMs: 2_000,
  pollMs: 250,
  order: 'drain-first',
  confirmAttempts: 20,
  stallTimeoutMs: 10 * 60_000,
  metadataSecretName: (release) => `${release}-metadata`,
  metadataSecretKey: 'connection',
};

export interface CoordinatorHooks {
  onStep?: (report: StepReport) => void;
  onPhase?: (operation: OperationState) => void;
  /** Something releaseState(namespace, release) reads may have changed (a cached record, the operation, the DB revision). */
  onReleaseChange?: (namespace: string, release: string) => void;
  /** An operation started (reason) or stopped (undefined) waiting on something that may never come. */
  onStall?: (operation: OperationState, reason: string | undefined) => void;
  /** A held workload's version was resolved (or could not be): what, how, how long. */
  onResolution?: (record: ResolutionRecord) => void;
}

export interface CoordinatorDeps {
  kubeConfig: KubeConfig;
  rest: KubeRest;
  cluster: Cluster;
  exec: ExecRunner;
  logger: Logger;
  hooks?: CoordinatorHooks;
  readRevision?: (url: string) => Promise<string | null>;
  migrationRunning?: (url: string) => Promise<boolean>;
}
