// A ContainerRuntime for controller tests: containers that exit on command, readiness toggles,
// slow or never-ending stops. Init containers exit 0 at once unless a rule says otherwise.
import { RESOURCES } from '../../../../testbed/sim/resources.js';
import type { Store } from '../../../../testbed/sim/store.js';
import type { ContainerProcess, ContainerRuntime, ContainerStart, KubeObject } from '../../../../testbed/sim/types.js';
import {
  startControllers,
  type ControllerOptions,
  type Controllers,
} from '../../../../testbed/sim/controllers/index.js';

export interface Behaviour {
  /** Exit on its own after this many ms with `exitCode` (default: run until told). */
  exitAfterMs?: number;
  exitCode?: number;
  ready?: boolean;
  /** How long stop() takes; 'never' for a process that ignores SIGTERM. */
  stopMs?: number | 'never';
}

export class FakeProcess implements ContainerProcess {
  readonly exited: Promise<{ exitCode: number; reason?: string }>;
  readyFlag: boolean;
  stopCalls = 0;
  exitCode: number | undefined;
  private resolveExit!: (r: { exitCode: number }) => void;

  constructor(
    readonly req: ContainerStart,
    private readonly behaviour: Behaviour,
  ) {
    this.readyFlag = behaviour.ready ?? true;
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    if (behaviour.exitAfterMs !== undefined)
      setTimeout(() => this.exit(behaviour.exitCode ?? 0), behaviour.exitAfterMs);
  }

  get pod(): string {
    return this.req.pod.metadata.name;
  }

  get container(): string {
    return this.req.container.name;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  exit(code: number): void {
    if (this.exitCode !== undefined) return;
    this.exitCode = code;
    this.resolveExit({ exitCode: code });
  }

  ready(): boolean {
    return this.readyFlag && this.running;
  }

  stop(): Promise<void> {
    this.stopCalls++;
    const ms = this.behaviour.stopMs ?? 0;
    if (ms === 'never') return new Promise(() => {});
    return new Promise((resolve) =>
      setTimeout(() => {
        this.exit(143); // terminated by SIGTERM
        resolve();
      }, ms),
    );
  }
}

export class FakeRuntime implements ContainerRuntime {
  readonly processes: FakeProcess[] = [];
  /** Decides how a container behaves; the default runs mains forever and completes inits at once. */
  behaviour: (req: ContainerStart) => Behaviour = (req) => (req.role === 'init' ? { exitAfterMs: 1, exitCode: 0 } : {});

  start(req: ContainerStart): ContainerProcess {
    const proc = new FakeProcess(req, this.behaviour(req));
    this.processes.push(proc);
    return proc;
  }

  exec = async (): Promise<{ exitCode: number }> => ({ exitCode: 0 });

  /** The latest process of a pod's container. */
  latest(pod: string, container: string): FakeProcess | undefined {
    return this.processes.filter((p) => p.pod === pod && p.container === container).at(-1);
  }

  runningFor(pod: string): FakeProcess[] {
    return this.processes.filter((p) => p.pod === pod && p.running);
  }
}

/** Warnings the controllers logged (kept quiet, available to assertions and debugging). */
export const warnings: Array<{ msg: string; obj: object }> = [];

export const FAST: ControllerOptions = {
  logger: {
    debug() {},
    warn(obj, msg) {
      warnings.push({ msg, obj });
      if (process.env.SIM_DEBUG) console.warn(msg, obj);
    },
  },
  podStartDelayMs: 10,
  readyDelayMs: 10,
  probeIntervalMs: 5,
  crashLoopBackoffMs: 20,
  graceUnitMs: 20,
  defaultTerminationGraceSeconds: 5,
  resyncMs: 200,
};

export function start(store: Store, runtime: FakeRuntime, options: ControllerOptions = {}): Controllers {
  return startControllers(store, runtime, { ...FAST, ...options });
}

export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function container(name: string, image: string): Record<string, unknown> {
  return { name, image };
}

export function podTemplate(
  labels: Record<string, string>,
  image: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { metadata: { labels }, spec: { containers: [container('main', image)], ...extra } };
}

export function pods(store: Store, namespace: string, filter: (pod: KubeObject) => boolean = () => true): KubeObject[] {
  return store.list(RESOURCES.pods, namespace, filter).items;
}

export function imageOf(pod: KubeObject): string {
  const spec = pod.spec as { containers: Array<{ image: string }> };
  return spec.containers[0]?.image ?? '';
}

export function isReady(pod: KubeObject): boolean {
  const status = pod.status as { phase?: string; conditions?: Array<{ type: string; status: string }> } | undefined;
  return (
    status?.phase === 'Running' && (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** A DELETE with the pod's grace period, as the API server performs it. */
export function deleteGracefully(store: Store, pod: KubeObject, graceSeconds: number): void {
  const fresh = store.get(RESOURCES.pods, pod.metadata.namespace, pod.metadata.name);
  if (!fresh) return;
  fresh.metadata.deletionTimestamp = new Date(Date.now() + graceSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  fresh.metadata.deletionGracePeriodSeconds = graceSeconds;
  store.update(RESOURCES.pods, fresh);
}

/** `kubectl rollout status deployment` (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go), message for message. */
export function deploymentRolloutStatus(d: KubeObject): { done: boolean; message: string } {
  const spec = d.spec as { replicas?: number };
  const status = (d.status ?? {}) as Record<string, unknown> & {
    conditions?: Array<{ type: string; reason?: string }>;
  };
  const n = (k: string): number => (typeof status[k] === 'number' ? (status[k] as number) : 0);
  const name = d.metadata.name;
  if ((d.metadata.generation ?? 0) <= n('observedGeneration')) {
    const progressing = status.conditions?.find((c) => c.type === 'Progressing');
    if (progressing?.reason === 'ProgressDeadlineExceeded')
      return { done: false, message: `deployment "${name}" exceeded its progress deadline` };
    const replicas = spec.replicas ?? 1;
    if (n('updatedReplicas') < replicas) {
      return {
        done: false,
        message: `Waiting for deployment "${name}" rollout to finish: ${n('updatedReplicas')} out of ${replicas} new replicas have been updated...`,
      };
    }
    if (n('replicas') > n('updatedReplicas')) {
      return {
        done: false,
        message: `Waiting for deployment "${name}" rollout to finish: ${n('replicas') - n('updatedReplicas')} old replicas are pending termination...`,
      };
    }
    if (n('availableReplicas') < n('updatedReplicas')) {
      return {
        done: false,
        message: `Waiting for deployment "${name}" rollout to finish: ${n('availableReplicas')} of ${n('updatedReplicas')} updated replicas are available...`,
      };
    }
    return { done: true, message: `deployment "${name}" successfully rolled out` };
  }
  return { done: false, message: 'Waiting for deployment spec update to be observed...' };
}

/** `kubectl rollout status statefulset`, message for message. */
export function statefulSetRolloutStatus(sts: KubeObject): { done: boolean; message: string } {
  const spec = sts.spec as {
    replicas?: number;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
  };
  const status = (sts.status ?? {}) as Record<string, unknown>;
  const n = (k: string): number => (typeof status[k] === 'number' ? (status[k] as number) : 0);
  if ((spec.updateStrategy?.type ?? 'RollingUpdate') !== 'RollingUpdate')
    throw new Error('rollout status is only available for RollingUpdate strategy type');
  if (n('observedGeneration') === 0 || (sts.metadata.generation ?? 0) > n('observedGeneration')) {
    return { done: false, message: 'Waiting for statefulset spec update to be observed...' };
  }
  const replicas = spec.replicas ?? 1;
  if (n('readyReplicas') < replicas)
    return { done: false, message: `Waiting for ${replicas - n('readyReplicas')} pods to be ready...` };
  const partition = spec.updateStrategy?.rollingUpdate?.partition;
  if (partition !== undefined) {
    if (n('updatedReplicas') < replicas - partition) {
      return {
        done: false,
        message: `Waiting for partitioned roll out to finish: ${n('updatedReplicas')} out of ${replicas - partition} new pods have been updated...`,
      };
    }
    return {
      done: true,
      message: `partitioned roll out complete: ${n('updatedReplicas')} new pods have been updated...`,
    };
  }
  if (status.updateRevision !== status.currentRevision) {
    return {
      done: false,
      message: `waiting for statefulset rolling update to complete ${n('updatedReplicas')} pods at revision ${String(status.updateRevision)}...`,
    };
  }
  return {
    done: true,
    message: `statefulset rolling update complete ${n('currentReplicas')} pods at revision ${String(status.currentRevision)}...`,
  };
}
