// Contracts between the parts of the simulated cluster:
//   store (objects, resourceVersions, watch)  <- apiserver (HTTP wire protocol) and controllers (kubelet & co.)
//   apiserver exec endpoint -> ExecHandler (the simulated container runtime / Airflow CLI)
//   kubelet controller      -> ContainerRuntime (what a container does when it starts)

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: Array<{
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }>;
  generateName?: string;
  [key: string]: unknown;
}

/** Any Kubernetes object as stored: plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** A resource the simulated API server serves, e.g. { group: 'apps', version: 'v1', plural: 'deployments' }. */
export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  subresources?: Array<'status' | 'scale' | 'exec' | 'log'>;
  verbs: string[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

/** Everything a container of a simulated pod does lives behind this. */
export interface ExecRequest {
  namespace: string;
  pod: KubeObject;
  container: string;
  command: string[];
  stdin: boolean;
  tty: boolean;
}

export interface ExecIO {
  stdout(chunk: string | Buffer): void;
  stderr(chunk: string | Buffer): void;
  /** Data the client sends on the stdin channel; ends when the client closes stdin. */
  stdin: AsyncIterable<Buffer>;
  /** Aborted when the client goes away (websocket closed). */
  signal: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  /** Extra text for the status message on the error channel when exitCode != 0. */
  message?: string;
}

export type ExecHandler = (req: ExecRequest, io: ExecIO) => Promise<ExecResult>;

/** A running container in a simulated pod. */
export interface ContainerProcess {
  /** Resolves when the container's process exits (never, for a server). */
  readonly exited: Promise<{ exitCode: number; reason?: string }>;
  /** Readiness as a probe would see it right now. */
  ready(): boolean;
  /** SIGTERM: the process stops (the kubelet waits up to the grace period). */
  stop(): Promise<void>;
}

export interface ContainerStart {
  namespace: string;
  pod: KubeObject;
  container: Record<string, unknown> & { name: string; image?: string; command?: string[]; args?: string[] };
  /** 'init' containers must exit 0 before the main ones start. */
  role: 'init' | 'main';
}

export interface ContainerRuntime {
  start(req: ContainerStart): ContainerProcess;
  exec: ExecHandler;
}
