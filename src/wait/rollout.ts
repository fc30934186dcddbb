// Whether a workload has rolled out its current spec, read from its status the way
// `kubectl rollout status` reads it (and a Job: whether it completed). Pure.
import { isJsonObject, valueAt, type WorkloadKind } from '../core/objects.js';

export type Rollout =
  { state: 'done' } | { state: 'progressing'; detail: string } | { state: 'failed'; detail: string };

const DONE: Rollout = { state: 'done' };

function int(object: unknown, path: readonly string[], fallback: number): number {
  const value = valueAt(object, path);
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function condition(
  object: unknown,
  type: string,
): { status?: unknown; reason?: unknown; message?: unknown } | undefined {
  const conditions = valueAt(object, ['status', 'conditions']);
  if (!Array.isArray(conditions)) return undefined;
  return conditions.find((c): c is Record<string, unknown> => isJsonObject(c) && c.type === type);
}

/** The controller has not seen the latest spec yet: nothing in its status describes that spec. */
function unobserved(object: unknown): Rollout | undefined {
  const generation = int(object, ['metadata', 'generation'], 0);
  const observed = int(object, ['status', 'observedGeneration'], 0);
  if (observed < generation)
    return {
      state: 'progressing',
      detail: `its controller has not observed generation ${generation} yet (status is of ${observed})`,
    };
  return undefined;
}

function deployment(object: unknown): Rollout {
  if (valueAt(object, ['spec', 'paused']) === true)
    return { state: 'progressing', detail: 'paused (spec.paused=true)' };
  const pending = unobserved(object);
  if (pending) return pending;
  const progressing = condition(object, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      state: 'failed',
      detail: `exceeded its progress deadline${typeof progressing.message === 'string' ? `: ${progressing.message}` : ''}`,
    };
  }
  const replicas = int(object, ['spec', 'replicas'], 1);
  const updated = int(object, ['status', 'updatedReplicas'], 0);
  const total = int(object, ['status', 'replicas'], 0);
  const available = int(object, ['status', 'availableReplicas'], 0);
  if (updated < replicas) return { state: 'progressing', detail: `${updated} of ${replicas} pods updated` };
  if (total > updated) return { state: 'progressing', detail: `${total - updated} old pods pending termination` };
  if (available < updated) return { state: 'progressing', detail: `${available} of ${updated} updated pods available` };
  return DONE;
}

function statefulSet(object: unknown): Rollout {
  const pending = unobserved(object);
  if (pending) return pending;
  const replicas = int(object, ['spec', 'replicas'], 1);
  const ready = int(object, ['status', 'readyReplicas'], 0);
  if (valueAt(object, ['spec', 'updateStrategy', 'type']) !== 'OnDelete') {
    const partition = int(object, ['spec', 'updateStrategy', 'rollingUpdate', 'partition'], 0);
    const updated = int(object, ['status', 'updatedReplicas'], 0);
    if (partition > 0) {
      const expected = Math.max(0, replicas - partition);
      if (partition >= replicas)
        return { state: 'progressing', detail: `partition ${partition} keeps every pod on the previous revision` };
      if (updated < expected)
        return { state: 'progressing', detail: `${updated} of ${expected} pods updated (partition ${partition})` };
    } else {
      if (updated < replicas) return { state: 'progressing', detail: `${updated} of ${replicas} pods updated` };
      const current = valueAt(object, ['status', 'currentRevision']);
      const update = valueAt(object, ['status', 'updateRevision']);
      if (update !== undefined && current !== update)
        return { state: 'progressing', detail: `rolling out revision ${String(update)}` };
    }
  }
  if (ready < replicas) return { state: 'progressing', detail: `${ready} of ${replicas} pods ready` };
  return DONE;
}

function job(object: unknown): Rollout {
  if (condition(object, 'Complete')?.status === 'True') return DONE;
  const failed = condition(object, 'Failed');
  if (failed?.status === 'True') {
    return {
      state: 'failed',
      detail: `failed${typeof failed.reason === 'string' ? ` (${failed.reason})` : ''}${typeof failed.message === 'string' ? `: ${failed.message}` : ''}`,
    };
  }
  if (valueAt(object, ['spec', 'suspend']) === true)
    return { state: 'progressing', detail: 'suspended (spec.suspend=true)' };
  const completions = int(object, ['spec', 'completions'], 1);
  return {
    state: 'progressing',
    detail: `running (${int(object, ['status', 'succeeded'], 0)} of ${completions} completions)`,
  };
}

/** How far the workload is in rolling out its current spec. A CronJob has nothing to roll out. */
export function rolloutOf(kind: WorkloadKind, object: unknown): Rollout {
  if (valueAt(object, ['metadata', 'deletionTimestamp']) !== undefined)
    return { state: 'progressing', detail: 'being deleted' };
  switch (kind) {
    case 'Deployment':
      return deployment(object);
    case 'StatefulSet':
      return statefulSet(object);
    case 'Job':
      return job(object);
    case 'CronJob':
      return DONE;
  }
}
