// What an admission decision says, and its three constructors (in the spirit of controller-runtime's
// Allowed/Denied/Patched): every decision is built by one of them, so the defaults are in one place.
import type { Order } from './config.js';
import type { HoldRecord, JsonPatchOperation } from './hold.js';

export type DecisionKind =
  | 'pass-through'
  | 'trusted-user'
  | 'break-glass'
  | 'install'
  | 'no-version-change'
  | 'forward'
  | 'same-head'
  | 'downgrade'
  | 'join-operation'
  | 'return'
  | 'cancel-hold'
  | 'conflicting-operation'
  | 'unsupported-downgrade'
  | 'unknown-version';

/** What admitting this request asks the coordinator to do; always 'none' for dry-run requests. */
/** resolve-version: a hold naming an image whose version the coordinator resolves before it releases or downgrades. */
export type SideEffect = 'none' | 'open-operation' | 'join-operation' | 'cancel-hold' | 'resolve-version';

export interface VersionPoint {
  version?: string;
  revision?: string;
  source: 'object' | 'oldObject' | 'runningVersion' | 'dbRevision' | 'operation';
}

export interface DowngradePlan {
  /** drain-first: drain, then the downgrade in a runner pod; downgrade-first: the downgrade in a serving pod, then the drain. */
  order: Order;
  /** The exact argv the coordinator execs (validated values only). */
  argv: string[];
  execPod?: { name: string; component: string };
  drain: Array<{ kind: string; name: string; component: string; replicas: number }>;
  /** The outage the plan causes: the drained workloads stop after the downgrade until the target's pods are Ready. */
  outage: { workloads: number; pods: number };
}

export interface DecisionOperation {
  id: string;
  fromVersion: string;
  toVersion: string;
  fromRevision?: string;
  toRevision: string;
  phase?: string;
}

export interface Decision {
  kind: DecisionKind;
  allowed: boolean;
  /** One line for logs and audit. */
  reason: string;
  /** Short lines for the API server to show the client (kubectl, Helm). */
  warnings: string[];
  patch: JsonPatchOperation[];
  /** Set when denied: the status the API server returns. */
  denial?: { code: number; message: string };
  dryRun: boolean;
  sideEffect: SideEffect;
  subject: { kind: string; namespace: string; name: string; user: string; release?: string; component?: string };
  from?: VersionPoint;
  to?: VersionPoint;
  operation?: DecisionOperation;
  hold?: HoldRecord;
  plan?: DowngradePlan;
  breakGlass?: { reason: string };
}

/** What every decision about one request shares: the request's subject, and the versions compared. */
export type DecisionBasis = Pick<Decision, 'dryRun' | 'subject' | 'from' | 'to'>;

type Extras = Partial<Pick<Decision, 'warnings' | 'patch' | 'sideEffect' | 'operation' | 'breakGlass'>>;

/** Admitted; `extras` may add warnings, a patch (e.g. removing a hold), a side effect. */
export function allowed(basis: DecisionBasis, kind: DecisionKind, reason: string, extras: Extras = {}): Decision {
  return { ...basis, kind, allowed: true, reason, warnings: [], patch: [], sideEffect: 'none', ...extras };
}

/** Refused with an HTTP status and the message the client sees. */
export function denied(
  basis: DecisionBasis,
  kind: DecisionKind,
  reason: string,
  denial: { code: number; message: string },
  extras: Pick<Decision, 'operation'> = {},
): Decision {
  return { ...basis, kind, allowed: false, reason, warnings: [], patch: [], sideEffect: 'none', ...extras, denial };
}

/** Admitted with a hold patch, for an operation the coordinator opens or the object joins (none when dry run). */
export function held(
  basis: DecisionBasis,
  kind: 'downgrade' | 'return' | 'join-operation',
  reason: string,
  warnings: string[],
  hold: { patch: JsonPatchOperation[]; record: HoldRecord },
  operation: DecisionOperation,
  extras: Pick<Decision, 'plan'> = {},
): Decision {
  const sideEffect: SideEffect = basis.dryRun
    ? 'none'
    : kind === 'downgrade' || kind === 'return'
      ? 'open-operation'
      : 'join-operation';
  return {
    ...basis,
    kind,
    allowed: true,
    reason,
    warnings,
    patch: hold.patch,
    sideEffect,
    operation,
    hold: hold.record,
    ...extras,
  };
}
