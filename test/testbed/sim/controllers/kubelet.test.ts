import { afterEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../../../../testbed/sim/resources.js';
import { Store } from '../../../../testbed/sim/store.js';
import type { KubeObject } from '../../../../testbed/sim/types.js';
import type { ControllerOptions, Controllers } from '../../../../testbed/sim/controllers/index.js';
import { deleteGracefully, FakeRuntime, isReady, sleep, start, waitFor } from './fake-runtime.js';

const NS = 'airflow';

let store: Store;
let runtime: FakeRuntime;
let controllers: Controllers | undefined;

function boot(options: ControllerOptions = {}): void {
  store = new Store();
  runtime = new FakeRuntime();
  controllers = start(store, runtime, options);
}

afterEach(async () => {
  await controllers?.stop();
  controllers = undefined;
});

type PodStatus = {
  phase?: string;
  podIP?: string;
  startTime?: string;
  conditions?: Array<{ type: string; status: string; reason?: string }>;
  initContainerStatuses?: Array<
    Record<string, unknown> & { state: Record<string, Record<string, unknown>>; restartCount: number }
  >;
  containerStatuses?: Array<
    Record<string, unknown> & {
      state: Record<string, Record<string, unknown>>;
      restartCount: number;
      lastState: Record<string, Record<string, unknown>>;
    }
  >;
};

function createPod(name: string, spec: Record<string, unknown>): KubeObject {
  return store.create(RESOURCES.pods, { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec });
}

const getPod = (name: string): KubeObject | undefined => store.get(RESOURCES.pods, NS, name);
const statusOf = (name: string): PodStatus => (getPod(name)?.status ?? {}) as PodStatus;
const conditionOf = (name: string, type: string): string | undefined =>
  statusOf(name).conditions?.find((c) => c.type === type)?.status;
const main = (image = 'apache/airflow:3.1.0'): Record<string, unknown> => ({ name: 'scheduler', image });

describe('kubelet', () => {
  it('schedules a bare pod onto node-1 and runs it to Running/Ready with the status kubectl shows', async () => {
    boot();
    createPod('runner', { containers: [main()] });
    await waitFor('ready', () => isReady(getPod('runner')!));
    const pod = getPod('runner')!;
    const status = pod.status as PodStatus;
    expect((pod.spec as { nodeName: string }).nodeName).toBe('node-1');
    expect(status.podIP).toMatch(/^10\.244\.\d+\.\d+$/);
    expect(status.startTime).toEqual(expect.any(String));
    expect(status.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
      'PodReadyToStartContainers=True',
      'Initialized=True',
      'Ready=True',
      'ContainersReady=True',
      'PodScheduled=True',
    ]);
    const [cs] = status.containerStatuses ?? [];
    expect(cs).toMatchObject({
      name: 'scheduler',
      ready: true,
      started: true,
      restartCount: 0,
      image: 'apache/airflow:3.1.0',
    });
    expect(cs?.imageID).toMatch(/^docker\.io\/apache\/airflow@sha256:[0-9a-f]{64}$/);
    expect(cs?.state.running?.startedAt).toEqual(expect.any(String));
    expect(controllers!.kubelet.runningProcesses().map((p) => `${p.pod}/${p.container}/${p.role}`)).toEqual([
      'runner/scheduler/main',
    ]);
    const reasons = store.list(RESOURCES.events, NS).items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Scheduled', 'Pulled', 'Created', 'Started']));
  });

  it('follows readiness of the process', async () => {
    boot();
    createPod('api', { containers: [main()] });
    await waitFor('ready', () => isReady(getPod('api')!));
    runtime.latest('api', 'scheduler')!.readyFlag = false;
    await waitFor('not ready', () => conditionOf('api', 'Ready') === 'False');
    expect(statusOf('api').phase).toBe('Running');
    runtime.latest('api', 'scheduler')!.readyFlag = true;
    await waitFor('ready again', () => conditionOf('api', 'Ready') === 'True');
  });

  it('runs init containers one by one before the main containers', async () => {
    boot();
    runtime.behaviour = (req) => (req.role === 'init' ? {} : {}); // init containers wait to be told
    createPod('web', {
      initContainers: [
        { name: 'wait-for-airflow-migrations', image: 'apache/airflow:3.1.0' },
        { name: 'second-init', image: 'busybox' },
      ],
      containers: [main()],
    });
    const first = await waitFor('first init started', () => runtime.latest('web', 'wait-for-airflow-migrations'));
    await sleep(40);
    expect(runtime.latest('web', 'second-init')).toBeUndefined();
    expect(runtime.latest('web', 'scheduler')).toBeUndefined();
    expect(statusOf('web').phase).toBe('Pending');
    expect(conditionOf('web', 'Initialized')).toBe('False');
    expect(statusOf('web').initContainerStatuses?.[0]?.state.running).toBeDefined();
    expect(statusOf('web').containerStatuses?.[0]?.state.waiting).toEqual({ reason: 'PodInitializing' });
    first.exit(0);
    const second = await waitFor('second init started', () => runtime.latest('web', 'second-init'));
    expect(runtime.latest('web', 'scheduler')).toBeUndefined();
    second.exit(0);
    await waitFor('ready', () => isReady(getPod('web')!));
    expect(conditionOf('web', 'Initialized')).toBe('True');
    expect(statusOf('web').initContainerStatuses?.map((s) => s.state.terminated?.reason)).toEqual([
      'Completed',
      'Completed',
    ]);
  });

  it('restarts a failing init container with back-off (Init:Error, then Init:CrashLoopBackOff)', async () => {
    boot();
    runtime.behaviour = (req) => (req.role === 'init' ? { exitAfterMs: 1, exitCode: 1 } : {});
    createPod('web', { initContainers: [{ name: 'migrations', image: 'apache/airflow:3.0.2' }], containers: [main()] });
    await waitFor('Init:Error', () => statusOf('web').initContainerStatuses?.[0]?.state.terminated?.reason === 'Error');
    await waitFor('CrashLoopBackOff', () => {
      const s = statusOf('web').initContainerStatuses?.[0];
      return s?.state.waiting?.reason === 'CrashLoopBackOff' && (s.restartCount ?? 0) >= 1 && s;
    });
    expect(statusOf('web').phase).toBe('Pending');
    expect(runtime.latest('web', 'scheduler')).toBeUndefined();
    // Once the init container succeeds the pod goes on.
    runtime.behaviour = (req) => (req.role === 'init' ? { exitAfterMs: 1, exitCode: 0 } : {});
    await waitFor('ready', () => isReady(getPod('web')!), 5000);
  });

  it('fails the pod when an init container fails under restartPolicy Never', async () => {
    boot();
    runtime.behaviour = (req) => (req.role === 'init' ? { exitAfterMs: 1, exitCode: 2 } : {});
    createPod('task', { restartPolicy: 'Never', initContainers: [{ name: 'init', image: 'x' }], containers: [main()] });
    await waitFor('failed', () => statusOf('task').phase === 'Failed');
    expect(statusOf('task').initContainerStatuses?.[0]?.state.terminated).toMatchObject({
      exitCode: 2,
      reason: 'Error',
    });
  });

  it('restarts an exited main container under restartPolicy Always; Never ends in Succeeded/Failed', async () => {
    boot();
    createPod('always', { containers: [main()] });
    createPod('ok', { restartPolicy: 'Never', containers: [main()] });
    createPod('bad', { restartPolicy: 'Never', containers: [main()] });
    await waitFor('all running', () => ['always', 'ok', 'bad'].every((n) => runtime.latest(n, 'scheduler')));
    runtime.latest('always', 'scheduler')!.exit(1);
    runtime.latest('ok', 'scheduler')!.exit(0);
    runtime.latest('bad', 'scheduler')!.exit(3);
    await waitFor('restarted', () => {
      const cs = statusOf('always').containerStatuses?.[0];
      return cs?.restartCount === 1 && cs.state.running && cs;
    });
    expect(statusOf('always').containerStatuses?.[0]?.lastState.terminated).toMatchObject({
      exitCode: 1,
      reason: 'Error',
    });
    await waitFor('ok succeeded', () => statusOf('ok').phase === 'Succeeded');
    await waitFor('bad failed', () => statusOf('bad').phase === 'Failed');
    expect(conditionOf('ok', 'Ready')).toBe('False');
    expect(statusOf('ok').conditions?.find((c) => c.type === 'Ready')?.reason).toBe('PodCompleted');
    expect(runtime.processes.filter((p) => p.pod === 'always')).toHaveLength(2);
  });

  it('graceful deletion: stops the containers and removes the pod when they stopped, before the grace period ends', async () => {
    boot({ graceUnitMs: 100 });
    runtime.behaviour = () => ({ stopMs: 60 });
    createPod('web', { containers: [main(), { name: 'sidecar', image: 'busybox' }] });
    await waitFor('ready', () => isReady(getPod('web')!));
    const started = performance.now(); // monotonic: a wall-clock adjustment must not shorten the measured grace
    deleteGracefully(store, getPod('web')!, 10); // 10 s x 100 ms
    await waitFor(
      'stop called',
      () => runtime.runningFor('web').every((p) => p.stopCalls === 1) && runtime.processes.length === 2,
    );
    await sleep(20);
    expect(getPod('web')).toBeDefined();
    await waitFor('removed', () => getPod('web') === undefined);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(55);
    expect(took).toBeLessThan(800);
    expect(store.list(RESOURCES.events, NS).items.filter((e) => e.reason === 'Killing')).toHaveLength(2);
    expect(controllers!.kubelet.runningProcesses()).toHaveLength(0);
  });

  it('graceful deletion: removes the pod when the grace period runs out even if the process ignores SIGTERM', async () => {
    boot({ graceUnitMs: 50 });
    runtime.behaviour = () => ({ stopMs: 'never' });
    createPod('web', { terminationGracePeriodSeconds: 3, containers: [main()] });
    await waitFor('ready', () => isReady(getPod('web')!));
    const started = performance.now(); // monotonic: a wall-clock adjustment must not shorten the measured grace
    deleteGracefully(store, getPod('web')!, 3);
    await sleep(100);
    expect(getPod('web')).toBeDefined();
    await waitFor('removed', () => getPod('web') === undefined);
    const took = performance.now() - started;
    // 150 ms of grace; libuv computes a timer's due time from the loop's cached clock, so on a busy
    // machine the kill timer may fire up to one blocked loop turn early in real time.
    expect(took).toBeGreaterThanOrEqual(100);
    expect(took).toBeLessThan(1000);
  });

  it('stuckTerminating keeps a deleted pod until it is force-deleted (grace 0, the API server removes it)', async () => {
    boot({ graceUnitMs: 10, stuckTerminating: (pod) => pod.metadata.labels?.stuck === 'yes' });
    store.create(RESOURCES.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: NS, labels: { stuck: 'yes' } },
      spec: { containers: [main()] },
    });
    await waitFor('ready', () => isReady(getPod('web')!));
    deleteGracefully(store, getPod('web')!, 1);
    await sleep(150);
    expect(getPod('web')?.metadata.deletionTimestamp).toBeDefined();
    expect(runtime.latest('web', 'scheduler')!.running).toBe(true);
    store.remove(RESOURCES.pods, NS, 'web');
    await waitFor('process stopped', () => runtime.latest('web', 'scheduler')!.stopCalls === 1);
  });

  it('a stuck pod is finished off once stuckTerminating turns false', async () => {
    let stuck = true;
    boot({ graceUnitMs: 10, resyncMs: 50, stuckTerminating: () => stuck });
    createPod('web', { containers: [main()] });
    await waitFor('ready', () => isReady(getPod('web')!));
    deleteGracefully(store, getPod('web')!, 1);
    await sleep(100);
    expect(getPod('web')).toBeDefined();
    stuck = false;
    await waitFor('removed', () => getPod('web') === undefined);
  });

  // Why a finalizer cannot keep the guard's drain waiting (it counts terminal pods as gone): as a
  // kubelet since Kubernetes 1.27, the containers stop and the pod turns terminal while it stays.
  it('a deleted pod with a finalizer: containers stopped, phase terminal, kept until the finalizer is removed', async () => {
    boot({ graceUnitMs: 10 });
    store.create(RESOURCES.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: NS, finalizers: ['example.com/hold'] },
      spec: { containers: [main()] },
    });
    await waitFor('ready', () => isReady(getPod('web')!));
    deleteGracefully(store, getPod('web')!, 1);
    await waitFor('terminal', () => ['Succeeded', 'Failed'].includes(statusOf('web').phase ?? ''));
    expect(runtime.latest('web', 'scheduler')!.running).toBe(false);
    expect(getPod('web')?.metadata.deletionTimestamp).toBeDefined();
    const held = getPod('web')!;
    held.metadata.finalizers = [];
    store.update(RESOURCES.pods, held);
    await waitFor('removed', () => getPod('web') === undefined);
  });

  it('skips a pod without containers and keeps running the others', async () => {
    boot();
    createPod('broken', {});
    createPod('fine', { containers: [main()] });
    await waitFor('fine ready', () => isReady(getPod('fine')!));
    expect(getPod('broken')?.status).toBeUndefined();
  });
});
