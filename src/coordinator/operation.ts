// One downgrade operation per release, kept in the cluster (a ConfigMap in the release's namespace)
// so that any replica can resume it after a crash. Pure: naming, and the record's one codec
// (operationConfigMap / readOperationConfigMap). The phases' transitions are in transitions.ts.
import { z } from 'zod';
import { isValidRevision } from '../core/heads.js';
import { BUILT_IN_HEADS, type HeadsSource } from '../core/image-heads.js';
import { ORDERS, type Order } from '../core/config.js';
import { valueAt } from '../core/objects.js';
import { parseAirflowVersion } from '../core/versions.js';

// forward/restore/returned: the release was changed back to the from-version after the schema may
// have moved; the guard migrates it forward again and gives the drained workloads back.
// quiesce: the drain before the downgrade (order drain-first).
export const PHASES = [
  'confirm',
  'downgrade',
  'verify',
  'drain',
  'release',
  'done',
  'held',
  'aborted',
  'cancelled',
  'forward',
  'restore',
  'returned',
  'quiesce',
] as const;
export type Phase = (typeof PHASES)[number];

/** Phases in which the schema may already differ from what the release's running pods expect: no abort. */
export const SCHEMA_MAY_HAVE_CHANGED: readonly Phase[] = [
  'verify',
  'drain',
  'release',
  'done',
  'forward',
  'restore',
  'returned',
];
/**
 * Phases from which a change back to the from-version needs the schema checked (and moved forward)
 * first: a downgrade exec may be running in a pod even when its driver is gone.
 */
export const RETURN_NEEDS_FORWARD: readonly Phase[] = ['quiesce', 'downgrade', ...SCHEMA_MAY_HAVE_CHANGED];

// Records without an order were written by 0.1.0, which only had downgrade-first.
export { ORDERS, type Order } from '../core/config.js';
export const TERMINAL_PHASES: readonly Phase[] = ['done', 'aborted', 'cancelled', 'returned'];

export const STEP_NAMES = [
  'open',
  'confirm',
  'choose-exec-pod',
  'downgrade',
  'roll-forward',
  'verify',
  'drain',
  'release',
  'hold',
  'retry',
  'abort',
  'cancel',
  'forward',
  'restore',
  'stall',
  'quiesce',
  'resolve',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

const version = z.string().refine((v) => parseAirflowVersion(v) !== undefined, 'not an Airflow version');
const revision = z.string().refine(isValidRevision, 'not an alembic revision');

const stepSchema = z.object({
  step: z.enum(STEP_NAMES),
  outcome: z.enum(['ok', 'failed', 'skipped', 'held', 'waiting']),
  at: z.string(),
  durationMs: z.number().nonnegative(),
  detail: z.string().max(2000).optional(),
});
export type StepRecord = z.infer<typeof stepSchema>;

export const operationSchema = z.object({
  id: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  namespace: z.string().min(1).max(63),
  release: z.string().min(1).max(253),
  fromVersion: version,
  toVersion: version,
  fromRevision: revision,
  toRevision: revision,
  phase: z.enum(PHASES),
  openedAt: z.string(),
  updatedAt: z.string(),
  openedBy: z.string().max(300),
  execPod: z.object({ name: z.string(), container: z.string(), component: z.string(), runner: z.boolean() }).optional(),
  heldReason: z.string().max(2000).optional(),
  heldFrom: z.enum(PHASES).optional(),
  attempts: z.number().int().nonnegative(),
  order: z.enum(ORDERS).optional(),
  /** When the drain began: its timeout survives a failover. */
  drainStartedAt: z.string().optional(),
  /** A wait on something that may never come: why, and since when (the stall bound counts from here). */
  stalled: z.object({ reason: z.string().max(2000), since: z.string() }).optional(),
  /**
   * The id the webhook wrote on the holds when that differs from `id` (a repeated downgrade gets a
   * fresh id; holds admitted under the derived one still belong to it).
   */
  admittedAs: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/)
    .optional(),
  /**
   * A return to the from-version after the downgrade with this id ended `done`: the schema is at the
   * target and nobody else moves it forward (`helm rollback` runs no hooks), so this operation does.
   */
  returnOf: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/)
    .optional(),
  steps: z.array(stepSchema).max(200),
});
export type OperationState = z.infer<typeof operationSchema>;

export const OPERATION_CONFIGMAP_PREFIX = 'airflow-downgrade-guard-op-';
export const OPERATION_DATA_KEY = 'operation.json';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'airflow-downgrade-guard';
export const RELEASE_LABEL = 'airflow-downgrade-guard/release';

export function operationConfigMapName(release: string): string {
  return `${OPERATION_CONFIGMAP_PREFIX}${release}`.slice(0, 253);
}

export function leaseName(release: string): string {
  return `airflow-downgrade-guard-${release}`.slice(0, 253);
}

export class OperationStateError extends Error {
  override name = 'OperationStateError';
}

export function parseOperation(text: string): OperationState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new OperationStateError('operation state is not JSON');
  }
  const result = operationSchema.safeParse(raw);
  if (!result.success) {
    throw new OperationStateError(
      `operation state is invalid: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return result.data;
}

/**
 * The operation a ConfigMap holds and the ConfigMap's resourceVersion; undefined when it holds none.
 * Throws OperationStateError when the record is unreadable.
 */
export function readOperationConfigMap(object: unknown): { op: OperationState; resourceVersion: string } | undefined {
  const text = valueAt(object, ['data', OPERATION_DATA_KEY]);
  if (typeof text !== 'string') return undefined;
  return { op: parseOperation(text), resourceVersion: String(valueAt(object, ['metadata', 'resourceVersion']) ?? '') };
}

export function operationConfigMap(op: OperationState, resourceVersion?: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: operationConfigMapName(op.release),
      namespace: op.namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [RELEASE_LABEL]: op.release.slice(0, 63) },
      annotations: { 'airflow-downgrade-guard/phase': op.phase, 'airflow-downgrade-guard/operation': op.id },
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    data: { [OPERATION_DATA_KEY]: JSON.stringify(op) },
  };
}

export function isTerminal(phase: Phase): boolean {
  return TERMINAL_PHASES.includes(phase);
}

const MAX_STEPS = 200;

/** The operation with one more step recorded (oldest dropped past the bound; the audit keeps all). */
export function withStep(op: OperationState, step: StepRecord): OperationState {
  const steps = [...op.steps, step];
  return { ...op, steps: steps.slice(-MAX_STEPS) };
}

export interface NewOperation {
  id: string;
  order?: Order;
  namespace: string;
  release: string;
  fromVersion: string;
  toVersion: string;
  fromRevision: string;
  toRevision: string;
  openedBy: string;
  now: Date;
}

/**
 * Hold annotations are written by the webhook, but anyone who may edit the workload can write
 * them too: only open an operation whose revisions are the known heads of its versions and whose
 * target is strictly older, so annotations cannot steer `db downgrade` to an arbitrary revision.
 * Known to `heads`: the built-in table, or the heads map read from the newer image.
 */
export function openingProblem(
  input: Pick<NewOperation, 'fromVersion' | 'toVersion' | 'fromRevision' | 'toRevision'>,
  heads: HeadsSource = BUILT_IN_HEADS,
): string | undefined {
  const to = parseAirflowVersion(input.toVersion);
  const toHead = to ? heads.headFor(to) : undefined;
  if (toHead !== input.toRevision)
    return `to-revision ${input.toRevision} is not the schema head of ${input.toVersion} in ${heads.name}`;
  const from = heads.indexOf(input.fromRevision);
  if (from === -1) return `from-revision ${input.fromRevision} is not a known schema head in ${heads.name}`;
  if (heads.indexOf(input.toRevision) >= from)
    return `to-revision ${input.toRevision} is not older than from-revision ${input.fromRevision}`;
  return undefined;
}

export function newOperation(input: NewOperation): OperationState {
  const at = input.now.toISOString();
  return operationSchema.parse({
    ...input,
    now: undefined,
    phase: 'confirm',
    openedAt: at,
    updatedAt: at,
    attempts: 0,
    steps: [{ step: 'open', outcome: 'ok', at, durationMs: 0, detail: `opened by ${input.openedBy}` }],
  });
}
