// What the guard exists to prevent, recorded as the simulated containers see it:
//  - 'unknown-schema' violation: a running Airflow container whose image has no migration for the
//    database's revision (an older-version pod against a newer schema);
//  - 'stale-schema' exposure: a newer pod running against an older schema it still knows (e.g.
//    the newer pods between the downgrade and the drain), reported with its duration.

export interface ContainerRef {
  namespace: string;
  pod: string;
  container: string;
  imageVersion: string;
  imageHead: string;
}

export interface Violation extends ContainerRef {
  at: string;
  dbRevision: string;
  kind: 'unknown-schema';
}

export interface StaleExposure extends ContainerRef {
  kind: 'stale-schema';
  /** The latest older revision this container ran against during the period. */
  dbRevision: string;
  since: string;
  /** Set once the container stopped or the schema matched again. */
  until?: string;
  durationMs: number;
}

export interface ViolationRecorder {
  list(): Violation[];
  exposures(): StaleExposure[];
  clear(): void;
  /** Called for every new violation (tests can fail fast, the demo can print it). */
  onViolation(listener: (violation: Violation) => void): () => void;
  /** The runtime reports each observation of a container (`instance` distinguishes restarts). */
  observe(instance: string, ref: ContainerRef, state: SchemaState, now?: Date): void;
  /** The container stopped: close its open exposure. */
  ended(instance: string, now?: Date): void;
}

export type SchemaState =
  { kind: 'match' | 'fresh' } | { kind: 'unknown'; dbRevision: string } | { kind: 'stale'; dbRevision: string };

interface OpenExposure {
  exposure: StaleExposure;
  started: number;
}

export function createViolationRecorder(): ViolationRecorder {
  let violations: Violation[] = [];
  let closed: StaleExposure[] = [];
  const open = new Map<string, OpenExposure>();
  const seen = new Set<string>();
  const listeners = new Set<(violation: Violation) => void>();

  const closeExposure = (instance: string, now: Date): void => {
    const current = open.get(instance);
    if (!current) return;
    open.delete(instance);
    current.exposure.until = now.toISOString();
    current.exposure.durationMs = now.getTime() - current.started;
    closed.push(current.exposure);
  };

  return {
    list: () => [...violations],
    exposures: () => {
      const now = Date.now();
      const running = [...open.values()].map(({ exposure, started }) => ({ ...exposure, durationMs: now - started }));
      return [...closed, ...running];
    },
    clear: () => {
      violations = [];
      closed = [];
      open.clear();
      seen.clear();
    },
    onViolation: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    observe: (instance, ref, state, now = new Date()) => {
      if (state.kind === 'unknown') {
        closeExposure(instance, now);
        // One record per container instance and revision, not one per poll.
        const key = `${instance}\u0000${state.dbRevision}`;
        if (seen.has(key)) return;
        seen.add(key);
        const violation: Violation = {
          ...ref,
          at: now.toISOString(),
          dbRevision: state.dbRevision,
          kind: 'unknown-schema',
        };
        violations.push(violation);
        for (const listener of listeners) listener(violation);
        return;
      }
      if (state.kind === 'stale') {
        // One exposure per continuous stale period; it names the latest revision seen.
        const current = open.get(instance);
        if (current) {
          current.exposure.dbRevision = state.dbRevision;
          return;
        }
        open.set(instance, {
          started: now.getTime(),
          exposure: {
            ...ref,
            kind: 'stale-schema',
            dbRevision: state.dbRevision,
            since: now.toISOString(),
            durationMs: 0,
          },
        });
        return;
      }
      closeExposure(instance, now);
    },
    ended: (instance, now = new Date()) => closeExposure(instance, now),
  };
}
