// Our node agent for the real control plane: the simulated kubelet (testbed/sim/controllers/kubelet.ts)
// and the simulated Airflow containers (testbed/sim/airflow) pointed at a real kube-apiserver.
//
//   real API server --watch pods--> local mirror Store --> simulated Kubelet --> Airflow runtime
//   local mirror status changes --PATCH pods/status--> real API server
//   kubelet's final removal      --DELETE gracePeriodSeconds=0 (uid precondition)--> real API server
//   real API server --exec (WebSocket, proxied as is)--> this agent's kubelet endpoint --> runtime.exec
//
// It registers its Node (Ready, InternalIP 127.0.0.1, kubelet port, and the declared node feature
// ExtendWebSocketsToKubelet so that kube-apiserver 1.36 proxies exec WebSockets to it instead of
// translating them to SPDY) and renews the node's Lease in kube-node-lease. It acts with a node
// identity (system:node:<name> in system:nodes), so the Node authorizer and NodeRestriction apply.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { WebSocketServer } from 'ws';
import { KubeRest } from '../../src/k8s/rest.js';
import { WatchCache } from '../../src/k8s/watch-cache.js';
import { EXEC_PROTOCOLS, serveExec } from '../../testbed/sim/apiserver/exec.js';
import { EventRecorder } from '../../testbed/sim/controllers/events.js';
import { Kubelet } from '../../testbed/sim/controllers/kubelet.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import { Store } from '../../testbed/sim/store.js';
import type { ContainerRuntime, KubeObject, WatchEvent } from '../../testbed/sim/types.js';

export interface NodeAgentOptions {
  nodeName: string;
  /** Kubeconfig (YAML/JSON text) of the node's identity. */
  kubeconfig: string;
  /** The kubelet endpoint's serving certificate, signed by the CA kube-apiserver trusts for kubelets. */
  serving: { certPem: string; keyPem: string };
  runtime: ContainerRuntime;
  kubernetesVersion: string;
  /** Scaled down in tests like the simulated cluster's kubelet. */
  timing?: Partial<{
    podStartDelayMs: number;
    readyDelayMs: number;
    probeIntervalMs: number;
    crashLoopBackoffMs: number;
    graceUnitMs: number;
  }>;
  log?: (line: string) => void;
}

export interface NodeAgent {
  nodeName: string;
  /** The kubelet endpoint's port on 127.0.0.1. */
  port: number;
  /** The local mirror of the pods bound to this node (status as this agent last wrote it). */
  pods: Store;
  /**
   * Deleted pods for which this says true stay Terminating and running, as on a kubelet that does not
   * act on the deletion (the simulated cluster's `stuckTerminating`); undefined lets them go.
   */
  stuckTerminating(predicate: ((pod: KubeObject) => boolean) | undefined): void;
  stop(): Promise<void>;
}

const LEASE_SECONDS = 40;
const RENEW_MS = 10_000;

type Pod = KubeObject & { spec?: { nodeName?: string }; status?: unknown };

export async function startNodeAgent(options: NodeAgentOptions): Promise<NodeAgent> {
  const log = options.log ?? (() => undefined);
  const kc = new KubeConfig();
  kc.loadFromString(options.kubeconfig);
  const rest = new KubeRest(kc);
  const mirror = new Store();
  const logger = pino({ level: process.env.ADG_DEBUG ? 'debug' : 'error' }, pino.destination(2));
  const events = new EventRecorder(mirror, logger);
  const timing = {
    podStartDelayMs: 50,
    readyDelayMs: 300,
    probeIntervalMs: 100,
    crashLoopBackoffMs: 1_000,
    graceUnitMs: 1_000,
    ...options.timing,
  };
  let stuck: ((pod: KubeObject) => boolean) | undefined;
  const kubelet = new Kubelet(mirror, options.runtime, events, logger, {
    nodeName: options.nodeName,
    stuckTerminating: (pod) => stuck?.(pod) ?? false,
    podStartDelayMs: timing.podStartDelayMs,
    readyDelayMs: timing.readyDelayMs,
    probeIntervalMs: timing.probeIntervalMs,
    crashLoopBackoffMs: timing.crashLoopBackoffMs,
    defaultGraceSeconds: 30,
    graceUnitMs: timing.graceUnitMs,
  });
  const stops: Array<() => void | Promise<void>> = [];
  const failures = (what: string) => (error: unknown) =>
    log(`node ${options.nodeName}: ${what}: ${(error as Error).message}`);

  // ---- the kubelet endpoint: exec ----
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => EXEC_PROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const server = https.createServer({ cert: options.serving.certPem, key: options.serving.keyPem }, (req, res) => {
    res
      .writeHead(404, { 'Content-Type': 'text/plain' })
      .end(`${req.url} is not served by this node agent (exec only)\n`);
  });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'https://node');
    const [, kind, namespace, podName, container] = url.pathname.split('/');
    const pod = kind === 'exec' && namespace && podName ? mirror.get(RESOURCES.pods, namespace, podName) : undefined;
    if (!pod || !container) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such pod or container on this node\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const flag = (name: string) => ['1', 'true'].includes(url.searchParams.get(name) ?? '');
      const request = {
        namespace: namespace ?? '',
        pod,
        container,
        command: url.searchParams.getAll('command'),
        stdin: flag('input'),
        tty: flag('tty'),
      };
      void serveExec(
        ws,
        request,
        { stdin: flag('input'), stdout: flag('output'), stderr: flag('error') },
        options.runtime.exec,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  stops.push(
    () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );

  // ---- the Node and its Lease ----
  await registerNode(rest, options, port);
  const renew = async (): Promise<void> => {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${options.nodeName}`;
    const spec = {
      holderIdentity: options.nodeName,
      leaseDurationSeconds: LEASE_SECONDS,
      renewTime: new Date().toISOString().replace('Z', '000Z'),
    };
    try {
      await rest.request('PATCH', path, { body: { spec }, contentType: 'application/merge-patch+json' });
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
      await rest.request('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: options.nodeName, namespace: 'kube-node-lease' },
          spec,
        },
      });
    }
  };
  await renew();
  const leaseTimer = setInterval(() => void renew().catch(failures('lease renewal failed')), RENEW_MS);
  stops.push(() => clearInterval(leaseTimer));

  // ---- pods: real API -> mirror -> kubelet -> mirror -> real API ----
  const goneRemotely = new Set<string>();
  const pushed = new Map<string, string>();
  const pushing = new Map<string, Promise<void>>();
  const pushStatus = (pod: KubeObject): void => {
    const uid = pod.metadata.uid ?? '';
    const text = JSON.stringify(pod.status ?? {});
    if (pushed.get(uid) === text || goneRemotely.has(uid)) return;
    pushed.set(uid, text);
    const { namespace, name } = pod.metadata;
    // One write per pod at a time; each sends the mirror's latest status (uid as precondition).
    const previous = pushing.get(uid) ?? Promise.resolve();
    const next = previous.then(async () => {
      const latest = mirror.get(RESOURCES.pods, namespace, name);
      if (!latest || latest.metadata.uid !== uid || goneRemotely.has(uid)) return;
      await rest
        .request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
          body: { metadata: { uid }, status: latest.status },
          contentType: 'application/merge-patch+json',
        })
        .catch((error: { code?: number; message: string }) => {
          if (error.code !== 404 && error.code !== 409) failures(`status of ${namespace}/${name}`)(error);
        });
    });
    pushing.set(uid, next);
    void next.finally(() => {
      if (pushing.get(uid) === next) pushing.delete(uid);
    });
  };
  const removeRemotely = (pod: KubeObject): void => {
    const { namespace, name, uid } = pod.metadata;
    void (pushing.get(uid ?? '') ?? Promise.resolve())
      .then(() =>
        rest.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${name}`, {
          body: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } },
        }),
      )
      .catch((error: { code?: number; message: string }) => {
        if (error.code !== 404 && error.code !== 409) failures(`final delete of ${namespace}/${name}`)(error);
      });
  };
  const stopMirrorWatch = mirror.watch(RESOURCES.pods, undefined, undefined, (event: WatchEvent) => {
    kubelet.onPodEvent(event);
    const pod = event.object;
    if (event.type === 'DELETED') {
      if (!goneRemotely.delete(pod.metadata.uid ?? '')) removeRemotely(pod);
      pushed.delete(pod.metadata.uid ?? '');
      return;
    }
    pushStatus(pod);
  });
  stops.push(stopMirrorWatch);

  const cache = new WatchCache<Pod>(kc, rest, {
    name: `node ${options.nodeName} pods`,
    logger,
    paths: ['/api/v1/pods'],
    fieldSelector: `spec.nodeName=${options.nodeName}`,
    project: (obj) => obj as Pod,
    onChange: (_key, remote, previous) => {
      if (!remote) {
        const gone = previous;
        if (gone?.spec?.nodeName !== options.nodeName) return;
        const local = mirror.get(RESOURCES.pods, gone.metadata.namespace, gone.metadata.name);
        if (local && local.metadata.uid === gone.metadata.uid) {
          goneRemotely.add(gone.metadata.uid ?? '');
          mirror.remove(RESOURCES.pods, gone.metadata.namespace, gone.metadata.name);
        }
        return;
      }
      if (remote.spec?.nodeName !== options.nodeName) return;
      const local = mirror.get(RESOURCES.pods, remote.metadata.namespace, remote.metadata.name);
      if (local && local.metadata.uid !== remote.metadata.uid) {
        // The old pod of that name is gone remotely (a StatefulSet pod comes back under its name).
        goneRemotely.add(local.metadata.uid ?? '');
        mirror.remove(RESOURCES.pods, local.metadata.namespace, local.metadata.name);
      }
      const kept = local && local.metadata.uid === remote.metadata.uid ? local.status : remote.status;
      mirror.mirror(RESOURCES.pods, { ...remote, status: kept } as KubeObject);
    },
  });
  cache.start();
  stops.push(() => cache.stop());
  const resync = setInterval(() => kubelet.resync(), 1_000);
  stops.push(() => clearInterval(resync));

  // ---- events the kubelet records: forwarded as they are created ----
  const stopEvents = mirror.watch(RESOURCES.events, undefined, undefined, (event) => {
    if (event.type !== 'ADDED') return;
    const ev = {
      ...event.object,
      metadata: { name: event.object.metadata.name, namespace: event.object.metadata.namespace },
    };
    void rest
      .request('POST', `/api/v1/namespaces/${ev.metadata.namespace}/events`, { body: ev })
      .catch((error: { code?: number; message: string }) => {
        // A namespace being deleted takes no new events (403), as for a kubelet.
        if (error.code !== 403 && error.code !== 404) failures('event')(error);
      });
  });
  stops.push(stopEvents);

  log(`node ${options.nodeName}: registered, kubelet endpoint https://127.0.0.1:${port}`);
  let stopping: Promise<void> | undefined;
  return {
    nodeName: options.nodeName,
    port,
    pods: mirror,
    stuckTerminating: (predicate) => {
      stuck = predicate;
      kubelet.resync();
    },
    stop: () =>
      (stopping ??= (async () => {
        await kubelet.stop();
        for (const stop of stops.reverse()) await stop();
        await Promise.allSettled([...pushing.values()]);
        rest.close();
      })()),
  };
}

async function registerNode(rest: KubeRest, options: NodeAgentOptions, port: number): Promise<void> {
  const name = options.nodeName;
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'adg-node-agent',
      },
    },
    spec: {},
  };
  try {
    await rest.request('POST', '/api/v1/nodes', { body: node });
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error;
  }
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  });
  const resources = { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  await rest.request('PATCH', `/api/v1/nodes/${name}/status`, {
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [
          condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
          condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
          condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
          condition('Ready', 'True', 'KubeletReady', 'node agent (simulated kubelet) is posting ready status'),
        ],
        addresses: [
          { type: 'InternalIP', address: '127.0.0.1' },
          { type: 'Hostname', address: name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
        nodeInfo: {
          machineID: '',
          systemUUID: '',
          bootID: '',
          kernelVersion: '',
          osImage: 'airflow-downgrade-guard node agent',
          containerRuntimeVersion: 'simulated://1',
          kubeletVersion: options.kubernetesVersion,
          kubeProxyVersion: '',
          operatingSystem: 'linux',
          architecture: 'amd64',
        },
        // kube-apiserver 1.36 proxies exec WebSockets to nodes declaring this (otherwise it speaks SPDY to them).
        declaredFeatures: ['ExtendWebSocketsToKubelet'],
      },
    },
  });
}
