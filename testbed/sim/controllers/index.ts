// The simulated cluster's controller manager and node: wires the workload controllers and the
// kubelet to store watches, with a periodic resync as a safety net.
import type { Store } from '../store.js';
import { RESOURCES } from '../resources.js';
import type { ContainerRuntime, KubeObject, ResourceType, WatchEvent } from '../types.js';
import { controllerRef, errorMessage, objectKey, quietLogger, type Logger } from './common.js';
import type { ControllerContext } from './context.js';
import { CronJobController, type AdmitCreate, type TriggerOptions } from './cronjob.js';
import { DeploymentController } from './deployment.js';
import { EventRecorder } from './events.js';
import { JobController } from './job.js';
import { Kubelet, type RunningProcess } from './kubelet.js';
import { ReplicaSetController } from './replicaset.js';
import { StatefulSetController } from './statefulset.js';
import type { WorkQueue } from './queue.js';

export type { Logger } from './common.js';
export type { AdmitCreate, TriggerOptions } from './cronjob.js';
export type { RunningProcess } from './kubelet.js';
export { REVISION_ANNOTATION } from './deployment.js';
export { REVISION_LABEL } from './statefulset.js';
export { TRACKING_FINALIZER } from './job.js';
export { computeHash } from './common.js';

export interface ControllerOptions {
  /** Scheduling to first container start (sandbox + image pull). Default 300. */
  podStartDelayMs?: number;
  /** A main container reports ready no earlier than this after it started. Default 200. */
  readyDelayMs?: number;
  /** How often readiness is re-read from the container processes. Default 100. */
  probeIntervalMs?: number;
  /** First restart delay of a crashing container, doubling per restart (cap 30x). Default 1000. */
  crashLoopBackoffMs?: number;
  /** terminationGracePeriodSeconds for pods that do not set it. Default 30. */
  defaultTerminationGraceSeconds?: number;
  /** Milliseconds per second of grace period; tests shrink it. Default 1000. */
  graceUnitMs?: number;
  /** Pods for which this is true stay Terminating (not stopped, not removed) until it turns false or they are force-deleted. */
  stuckTerminating?: (pod: KubeObject) => boolean;
  /** Full re-reconcile of everything (missed events, timed conditions). Default 5000. */
  resyncMs?: number;
  /** The node pods are bound to. Default 'node-1'. */
  nodeName?: string;
  logger?: Logger;
  /** When set, the CronJob controller creates Jobs through it (admission webhooks) instead of straight into the store. */
  admitCreate?: AdmitCreate;
}

export interface Controllers {
  stop(): Promise<void>;
  kubelet: {
    /** The container processes running right now, init and main. */
    runningProcesses(): RunningProcess[];
  };
  cronJobs: {
    /** Fires a CronJob as its schedule would (honours suspend unless told otherwise). */
    trigger(namespace: string, name: string, options?: TriggerOptions): Promise<KubeObject | undefined>;
  };
}

export function startControllers(
  store: Store,
  runtime: ContainerRuntime,
  options: ControllerOptions = {},
): Controllers {
  const log = options.logger ?? quietLogger;
  const events = new EventRecorder(store, log);
  const defaultGraceSeconds = options.defaultTerminationGraceSeconds ?? 30;
  const ctx: ControllerContext = { store, log, events, defaultGraceSeconds };
  const deployments = new DeploymentController(ctx);
  const replicaSets = new ReplicaSetController(ctx);
  const statefulSets = new StatefulSetController(ctx);
  const jobs = new JobController(ctx);
  const cronJobs = new CronJobController(ctx, options.admitCreate);
  const kubelet = new Kubelet(store, runtime, events, log, {
    nodeName: options.nodeName ?? 'node-1',
    podStartDelayMs: options.podStartDelayMs ?? 300,
    readyDelayMs: options.readyDelayMs ?? 200,
    probeIntervalMs: options.probeIntervalMs ?? 100,
    crashLoopBackoffMs: options.crashLoopBackoffMs ?? 1000,
    defaultGraceSeconds,
    graceUnitMs: options.graceUnitMs ?? 1000,
    ...(options.stuckTerminating ? { stuckTerminating: options.stuckTerminating } : {}),
  });

  const ownerQueues: Record<string, WorkQueue> = {
    Deployment: deployments.queue,
    ReplicaSet: replicaSets.queue,
    StatefulSet: statefulSets.queue,
    Job: jobs.queue,
    CronJob: cronJobs.queue,
  };
  const enqueueOwner = (obj: KubeObject): void => {
    const ref = controllerRef(obj);
    const queue = ref ? ownerQueues[ref.kind] : undefined;
    if (ref && queue) queue.add(`${obj.metadata.namespace ?? ''}/${ref.name}`);
  };
  const routes: Array<[ResourceType, WorkQueue | undefined, (event: WatchEvent) => void]> = [
    [RESOURCES.deployments, deployments.queue, () => {}],
    [RESOURCES.replicasets, replicaSets.queue, (e) => enqueueOwner(e.object)],
    [RESOURCES.statefulsets, statefulSets.queue, () => {}],
    [RESOURCES.jobs, jobs.queue, (e) => enqueueOwner(e.object)],
    [RESOURCES.cronjobs, cronJobs.queue, () => {}],
    [
      RESOURCES.pods,
      undefined,
      (e) => {
        enqueueOwner(e.object);
        kubelet.onPodEvent(e);
      },
    ],
  ];

  const unwatch = routes.map(([type, queue, extra]) =>
    store.watch(type, undefined, undefined, (event) => {
      if (!event.object?.metadata?.name) return;
      try {
        queue?.add(objectKey(event.object));
        extra(event);
      } catch (err) {
        log.warn({ kind: type.kind, err: errorMessage(err) }, 'watch event not handled');
      }
    }),
  );

  const resyncAll = (): void => {
    for (const [type, queue] of routes) {
      if (!queue) continue;
      for (const obj of store.list(type).items) queue.add(objectKey(obj));
    }
    for (const pod of store.list(RESOURCES.pods).items) enqueueOwner(pod);
    try {
      kubelet.resync();
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'kubelet resync failed');
    }
  };
  resyncAll();
  const resync = setInterval(resyncAll, Math.max(50, options.resyncMs ?? 5000));
  resync.unref();

  let stopped = false;
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(resync);
      for (const stopWatch of unwatch) stopWatch();
      for (const queue of Object.values(ownerQueues)) queue.stop();
      await kubelet.stop();
    },
    kubelet: {
      runningProcesses: () => kubelet.runningProcesses(),
    },
    cronJobs: {
      trigger: (namespace, name, triggerOptions) => cronJobs.trigger(namespace, name, triggerOptions),
    },
  };
}
