// The simulated container runtime for Airflow pods: what each container of a pod does once the
// kubelet starts it, and what `exec` runs in it. Airflow containers act like their image's
// version against the real metadata database; running servers keep reading `alembic_version`
// and report what the guard must prevent (violations) or what it should keep short (exposure).
import { redactConnectionString } from '../../../src/db/connection.js';
import { readAlembicRevision } from '../../../src/db/alembic.js';
import type {
  ContainerProcess,
  ContainerRuntime,
  ContainerStart,
  ExecIO,
  ExecRequest,
  ExecResult,
  KubeObject,
} from '../types.js';
import { processArgv, shellWords } from './args.js';
import { runAirflowCommand, type CliContext, type CliIO } from './cli.js';
import { createFaultInjector, type FaultInjector, type FaultTarget } from './faults.js';
import { airflowImage, chainIndex, DEFAULT_IMAGE_CATALOG, type AirflowImage, type ImageCatalog } from './image.js';
import { AbortedError, PoolCache, sleep } from './metadata.js';
import { SharedSchemaReads } from './schema-reads.js';
import { compareVersions, parseAirflowVersion, type AirflowVersion } from '../../../src/core/versions.js';
import { createViolationRecorder, type ContainerRef, type SchemaState, type ViolationRecorder } from './violations.js';

export type ResolveSecret = (
  namespace: string,
  name: string,
  key: string,
) => string | undefined | Promise<string | undefined>;

export interface AirflowRuntimeOptions {
  /** Reads a Secret's decoded value (wired to the simulated API server's store). */
  resolveSecret: ResolveSecret;
  /** Duration of one migration step (default 200 ms). */
  stepDurationMs?: number;
  /** How often running Airflow servers read `alembic_version` (default 200 ms). */
  checkIntervalMs?: number;
  /** Servers and plain containers become ready this long after start (default 300 ms). */
  readyDelayMs?: number;
  /** Length of one CLI "second" (check-migrations timeout and polling; default 1000 ms). */
  secondMs?: number;
  /** How long `airflow tasks run` (KubernetesExecutor task pods) runs (default 2000 ms). */
  taskDurationMs?: number;
  faults?: FaultInjector;
  violations?: ViolationRecorder;
  /** Labels images declare (their Airflow version); default: the shared in-memory catalog. */
  images?: ImageCatalog;
  /** Container output and runtime notes, for debugging and the demo. */
  log?: (line: string, source: { namespace: string; pod: string; container: string }) => void;
}

export interface RunningContainer extends ContainerRef {
  kind: ContainerKind;
  startedAt: string;
}

export interface AirflowRuntime extends ContainerRuntime {
  readonly violations: ViolationRecorder;
  readonly faults: FaultInjector;
  /** Every running Airflow server reads the schema now (tests call it before asserting). */
  sweep(): Promise<void>;
  running(): RunningContainer[];
  /** Stops every container's loops and closes the database pools. */
  close(): Promise<void>;
}

/**
 * What a container does, from its argv (or, without one, from its name as the chart names them).
 * 'migrator': the community chart's `db-migrations` Deployment (`python -u .../db_migrations.py`),
 * which migrates the schema up to its image's head whenever it is behind, and keeps checking.
 */
export type ContainerKind = 'server' | 'task' | 'oneshot' | 'plain' | 'migrator';

const SERVER_COMMANDS = new Set(['scheduler', 'webserver', 'api-server', 'triggerer', 'dag-processor', 'kerberos']);
const SERVER_CONTAINER_NAMES = new Set([
  'scheduler',
  'webserver',
  'api-server',
  'triggerer',
  'dag-processor',
  'worker',
  'execution-api-server',
  // Bitnami's images start Airflow from their entrypoint by container name, with no command or args.
  'airflow-scheduler',
  'airflow-web',
  'airflow-worker',
  'airflow-triggerer',
  'airflow-dag-processor',
]);
const DB_URL_VARIABLES = ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', 'AIRFLOW__CORE__SQL_ALCHEMY_CONN'];
/** The community chart's database settings (its `<release>-config` Secret, through envFrom). */
const COMMUNITY_DATABASE_VARIABLES = [
  'DATABASE_HOST',
  'DATABASE_PORT',
  'DATABASE_DB',
  'DATABASE_USER',
  'DATABASE_PASSWORD',
  'DATABASE_PROPERTIES',
];
/** The community chart's db-migrations script (mounted from its Secret at /mnt/scripts). */
const MIGRATOR_SCRIPT = 'db_migrations.py';
/** `airflow db migrate` replaced `db upgrade` in 2.7.0. */
const MIGRATE_SINCE = parseAirflowVersion('2.7.0') as AirflowVersion;
/** Bitnami's chart: host, port, database, user, password (its entrypoint composes the URL). */
const BITNAMI_DATABASE_VARIABLES = [
  'AIRFLOW_DATABASE_HOST',
  'AIRFLOW_DATABASE_PORT_NUMBER',
  'AIRFLOW_DATABASE_NAME',
  'AIRFLOW_DATABASE_USERNAME',
  'AIRFLOW_DATABASE_PASSWORD',
];
const DEFAULT_CHECK_MIGRATIONS = ['airflow', 'db', 'check-migrations', '--migration-wait-timeout=60'];

interface EnvVar {
  name?: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name?: string; key?: string } };
}
interface EnvFrom {
  secretRef?: { name?: string };
}
type ContainerSpec = ContainerStart['container'];

function kindOf(
  argv: string[],
  containerName: string,
  role: ContainerStart['role'],
): { kind: ContainerKind; argv: string[] } {
  const name = argv[0]?.split('/').pop();
  if (argv.length === 0) {
    if (role === 'init' && containerName === 'wait-for-airflow-migrations')
      return { kind: 'oneshot', argv: DEFAULT_CHECK_MIGRATIONS };
    if (containerName === 'run-airflow-migrations') return { kind: 'oneshot', argv: ['airflow', 'db', 'migrate'] };
    if (role === 'main' && SERVER_CONTAINER_NAMES.has(containerName)) return { kind: 'server', argv };
    return { kind: 'plain', argv };
  }
  if ((name === 'python' || name === 'python3') && argv.some((a) => a.split('/').pop() === MIGRATOR_SCRIPT))
    return { kind: 'migrator', argv };
  if (name !== 'airflow') return { kind: 'plain', argv };
  const [, command, sub] = argv;
  if (command !== undefined && SERVER_COMMANDS.has(command)) return { kind: 'server', argv };
  if (command === 'celery' && sub === 'worker') return { kind: 'server', argv };
  if (command === 'celery') return { kind: 'plain', argv }; // flower talks to the broker, not the metadata DB
  if (command === 'tasks' && sub === 'run') return { kind: 'task', argv };
  return { kind: 'oneshot', argv };
}

function shellWordsOrEmpty(line: string): string[] {
  try {
    return shellWords(line);
  } catch {
    return [];
  }
}

function podName(pod: KubeObject): string {
  return pod.metadata.name;
}

function containersOf(pod: KubeObject): ContainerSpec[] {
  const spec = (pod as { spec?: { containers?: ContainerSpec[]; initContainers?: ContainerSpec[] } }).spec;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
}

function releaseOf(pod: KubeObject): string | undefined {
  const labels = pod.metadata.labels ?? {};
  return labels.release ?? labels['app.kubernetes.io/instance'];
}

export function createAirflowRuntime(options: AirflowRuntimeOptions): AirflowRuntime {
  const stepDurationMs = options.stepDurationMs ?? 200;
  const checkIntervalMs = options.checkIntervalMs ?? 200;
  const readyDelayMs = options.readyDelayMs ?? 300;
  const secondMs = options.secondMs ?? 1000;
  const taskDurationMs = options.taskDurationMs ?? 2000;
  const faults = options.faults ?? createFaultInjector();
  const images = options.images ?? DEFAULT_IMAGE_CATALOG;
  const violations = options.violations ?? createViolationRecorder();
  const pools = new PoolCache();
  const schemaReads = new SharedSchemaReads(
    async (url) => (await readAlembicRevision(pools.get(url), { timeoutMs: 2000 })).revision,
  );
  const servers = new Map<
    string,
    { ref: ContainerRef; kind: ContainerKind; startedAt: string; check: () => Promise<void> }
  >();
  const processes = new Set<{ stop(): Promise<void> }>();
  let instanceCounter = 0;

  const note = (source: { namespace: string; pod: string; container: string }, line: string): void => {
    options.log?.(line, source);
  };

  /**
   * The container's environment as the kubelet builds it: `envFrom` Secrets first, `env` over them.
   * Values stay unresolved (a Secret key is read only when the connection needs it).
   */
  async function containerEnv(namespace: string, container: ContainerSpec): Promise<EnvVar[]> {
    const env = new Map<string, EnvVar>();
    for (const from of (container.envFrom as EnvFrom[] | undefined) ?? []) {
      const name = from.secretRef?.name;
      if (!name) continue;
      for (const variable of [
        ...DB_URL_VARIABLES,
        ...DB_URL_VARIABLES.map((v) => `${v}_CMD`),
        ...COMMUNITY_DATABASE_VARIABLES,
      ]) {
        if ((await options.resolveSecret(namespace, name, variable)) !== undefined)
          env.set(variable, { name: variable, valueFrom: { secretKeyRef: { name, key: variable } } });
      }
    }
    for (const entry of (container.env as EnvVar[] | undefined) ?? []) if (entry.name) env.set(entry.name, entry);
    return [...env.values()];
  }

  /** The container's metadata connection, resolved from its env like the kubelet would. */
  async function databaseUrl(namespace: string, pod: KubeObject, container: ContainerSpec): Promise<string> {
    const env = await containerEnv(namespace, container);
    for (const variable of DB_URL_VARIABLES) {
      const entry = env.find((e) => e.name === variable);
      if (!entry) continue;
      const value = await envValue(namespace, env, variable);
      if (value === undefined)
        throw new Error(
          `secret ${namespace}/${entry.valueFrom?.secretKeyRef?.name ?? '?'} has no key '${entry.valueFrom?.secretKeyRef?.key ?? '?'}' (${variable})`,
        );
      return value;
    }
    for (const variable of DB_URL_VARIABLES) {
      if (env.some((e) => e.name === `${variable}_CMD`))
        return runConnectionCommand(namespace, env, (await envValue(namespace, env, `${variable}_CMD`)) ?? '');
    }
    // Bitnami's images build the connection in their entrypoint from AIRFLOW_DATABASE_* (PostgreSQL).
    const [host, port, name, user, password] = await Promise.all(
      BITNAMI_DATABASE_VARIABLES.map((variable) => envValue(namespace, env, variable)),
    );
    if (host && name && user) {
      const auth = `${encodeURIComponent(user)}${password !== undefined ? `:${encodeURIComponent(password)}` : ''}`;
      return `postgresql://${auth}@${host}${port ? `:${port}` : ''}/${name}`;
    }
    // Convenience for chart-shaped manifests without env: the chart's metadata Secret.
    const release = releaseOf(pod);
    if (release) {
      const value = await options.resolveSecret(namespace, `${release}-metadata`, 'connection');
      if (value !== undefined) return value;
    }
    throw new Error(`no metadata database configured for container ${container.name} (set ${DB_URL_VARIABLES[0]})`);
  }

  async function envValue(namespace: string, env: EnvVar[], name: string): Promise<string | undefined> {
    const entry = env.find((e) => e.name === name);
    if (entry?.value !== undefined) return entry.value;
    const ref = entry?.valueFrom?.secretKeyRef;
    return ref?.name && ref.key ? options.resolveSecret(namespace, ref.name, ref.key) : undefined;
  }

  /**
   * `SQL_ALCHEMY_CONN_CMD`: Airflow runs the command and takes its output. The simulation knows the
   * forms charts use: `echo [-n] URL`, `printenv NAME`, and a command built from the community
   * chart's DATABASE_* settings (its `eval "$DATABASE_SQLALCHEMY_CMD"`).
   */
  async function runConnectionCommand(namespace: string, env: EnvVar[], command: string): Promise<string> {
    const words = shellWordsOrEmpty(command);
    if (words[0] === 'echo') return words.slice(words[1] === '-n' ? 2 : 1).join(' ');
    if (words[0] === 'printenv' && words[1]) {
      const value = await envValue(namespace, env, words[1]);
      if (value !== undefined) return value;
    }
    if (command.includes('DATABASE_')) {
      const [host, port, db, user, password, properties] = await Promise.all(
        COMMUNITY_DATABASE_VARIABLES.map((name) => envValue(namespace, env, name)),
      );
      if (host && db && user) {
        const auth = `${encodeURIComponent(user)}${password !== undefined ? `:${encodeURIComponent(password)}` : ''}`;
        return `postgresql://${auth}@${host}${port ? `:${port}` : ''}/${db}${properties ?? ''}`;
      }
    }
    throw new Error(
      `the simulated image cannot run this SQL_ALCHEMY_CONN_CMD (supported: echo URL, printenv NAME, the community chart's DATABASE_* command)`,
    );
  }

  function cliContext(
    namespace: string,
    pod: KubeObject,
    container: ContainerSpec,
    image: AirflowImage,
    argv: readonly string[],
  ): CliContext {
    return {
      image,
      databaseUrl: () => databaseUrl(namespace, pod, container),
      target: { namespace, pod: podName(pod), container: container.name, argv },
      faults,
      stepDurationMs,
      secondMs,
    };
  }

  function classify(image: AirflowImage, revision: string | null): SchemaState {
    if (revision === null) return { kind: 'fresh' };
    if (revision === image.head) return { kind: 'match' };
    return chainIndex(image, revision) >= 0
      ? { kind: 'stale', dbRevision: revision }
      : { kind: 'unknown', dbRevision: revision };
  }

  /** One schema read of a running Airflow container; unreadable databases are noted, not judged. */
  async function observeSchema(
    instance: string,
    ref: ContainerRef,
    target: FaultTarget,
    image: AirflowImage,
    url: () => Promise<string>,
    alive: () => boolean,
  ): Promise<void> {
    if (faults.peek(target, ['db-error'])) return;
    try {
      const revision = await schemaReads.read(await url());
      // A read that finishes after the container stopped must not reopen its exposure.
      if (alive()) violations.observe(instance, ref, classify(image, revision));
    } catch (error) {
      note(target, `schema read failed: ${redactConnectionString((error as Error).message)}`);
    }
  }

  function start(req: ContainerStart): ContainerProcess {
    const { namespace, pod, container, role } = req;
    const source = { namespace, pod: podName(pod), container: container.name };
    const image = airflowImage(container.image, images);
    let argv: string[];
    try {
      argv = processArgv(container.command, container.args);
    } catch (error) {
      return failedProcess(source, (error as Error).message);
    }
    const { kind, argv: effectiveArgv } = image ? kindOf(argv, container.name, role) : { kind: 'plain' as const, argv };
    const target: FaultTarget = { ...source, argv: effectiveArgv };
    const slowStart = faults.take(target, ['slow-start'])?.delayMs ?? 0;
    const stopper = new AbortController();
    let finished: { exitCode: number; reason?: string } | undefined;
    let resolveExit!: (value: { exitCode: number; reason?: string }) => void;
    const exited = new Promise<{ exitCode: number; reason?: string }>((resolve) => (resolveExit = resolve));
    const finish = (exitCode: number, reason: string): void => {
      if (finished) return;
      finished = { exitCode, reason };
      resolveExit(finished);
    };
    const startedAt = Date.now();
    const instance = `${namespace}/${source.pod}/${container.name}#${(instanceCounter += 1)}`;
    let readyAt = startedAt + readyDelayMs + slowStart;

    if (image && kind === 'oneshot') {
      readyAt = startedAt + slowStart;
      const io = containerIO(source, stopper.signal);
      void (async () => {
        try {
          if (slowStart) await sleep(slowStart, stopper.signal);
          const result = await runAirflowCommand(
            cliContext(namespace, pod, container, image, effectiveArgv),
            effectiveArgv,
            io,
          );
          finish(result.exitCode, result.exitCode === 0 ? 'Completed' : 'Error');
        } catch (error) {
          // A dropped halfway migration in a container is a killed process.
          note(source, `killed: ${(error as Error).message}`);
          finish(137, 'Error');
        }
      })();
    }

    if (image && kind === 'migrator') {
      // Ready once the schema is at the image's head (the chart's readiness waits for the same).
      readyAt = Number.POSITIVE_INFINITY;
      const io = containerIO(source, stopper.signal);
      const migrateArgv = ['airflow', 'db', compareVersions(image.version, MIGRATE_SINCE) < 0 ? 'upgrade' : 'migrate'];
      void (async () => {
        try {
          if (slowStart) await sleep(slowStart, stopper.signal);
          while (!stopper.signal.aborted && !finished) {
            const revision = await schemaReads.read(await databaseUrl(namespace, pod, container));
            if (revision === image.head) {
              if (readyAt === Number.POSITIVE_INFINITY) readyAt = Date.now();
            } else if (revision !== null && chainIndex(image, revision) < 0) {
              // Alembic cannot locate a revision newer than the image: the script dies, the kubelet restarts it.
              note(source, `Can't locate revision identified by '${revision}'`);
              finish(1, 'Error');
              return;
            } else {
              note(
                source,
                `pending migrations (database at ${revision ?? '(empty)'}): running ${migrateArgv.join(' ')}`,
              );
              const result = await runAirflowCommand(
                cliContext(namespace, pod, container, image, migrateArgv),
                migrateArgv,
                io,
              );
              if (result.exitCode !== 0) {
                finish(result.exitCode, 'Error');
                return;
              }
            }
            await sleep(checkIntervalMs, stopper.signal);
          }
        } catch (error) {
          if (stopper.signal.aborted) return;
          note(source, `killed: ${redactConnectionString((error as Error).message)}`);
          finish(1, 'Error');
        }
      })();
    }

    if (image && (kind === 'server' || kind === 'task')) {
      const ref: ContainerRef = { ...source, imageVersion: image.version.text, imageHead: image.head };
      const alive = () => !stopper.signal.aborted && !finished;
      const check = () =>
        observeSchema(instance, ref, target, image, () => databaseUrl(namespace, pod, container), alive);
      servers.set(instance, { ref, kind, startedAt: new Date(startedAt).toISOString(), check });
      let inFlight = false;
      const tick = async () => {
        if (inFlight) return;
        inFlight = true;
        await check().finally(() => (inFlight = false));
      };
      const firstCheck = tick().catch(() => undefined);
      // Every container checks on the same beat (multiples of the interval), so the containers of
      // one database share a read (SharedSchemaReads) instead of sending one query each.
      let timer = setTimeout(
        () => {
          void tick();
          timer = setInterval(() => void tick(), checkIntervalMs);
        },
        checkIntervalMs - (Date.now() % checkIntervalMs),
      );
      const cleanup = () => {
        clearTimeout(timer);
        servers.delete(instance);
        violations.ended(instance);
      };
      stopper.signal.addEventListener('abort', cleanup, { once: true });
      if (kind === 'task') {
        // A task reads the schema before it ends, however loaded the machine: none completes unseen.
        void Promise.all([sleep(taskDurationMs + slowStart, stopper.signal), firstCheck]).then(
          () => {
            cleanup();
            finish(0, 'Completed');
          },
          () => undefined,
        );
      }
    }

    const handle: ContainerProcess = {
      exited,
      ready: () => !finished && !stopper.signal.aborted && Date.now() >= readyAt,
      stop: async () => {
        processes.delete(handle);
        if (finished) return;
        stopper.abort();
        finish(kind === 'oneshot' ? 143 : 0, kind === 'oneshot' ? 'Error' : 'Completed');
      },
    };
    processes.add(handle);
    void exited.then(() => processes.delete(handle));
    return handle;
  }

  function containerIO(source: { namespace: string; pod: string; container: string }, signal: AbortSignal): CliIO {
    const write = (chunk: string) => {
      for (const line of chunk.split('\n')) if (line) note(source, line);
    };
    return { stdout: write, stderr: write, stdin: emptyStdin(), signal };
  }

  function failedProcess(
    source: { namespace: string; pod: string; container: string },
    message: string,
  ): ContainerProcess {
    note(source, message);
    return { exited: Promise.resolve({ exitCode: 2, reason: 'Error' }), ready: () => false, stop: async () => {} };
  }

  async function exec(req: ExecRequest, io: ExecIO): Promise<ExecResult> {
    const container = containersOf(req.pod).find((c) => c.name === req.container);
    if (!container) return { exitCode: 1, message: `container ${req.container} not found in pod ${podName(req.pod)}` };
    const target: FaultTarget = {
      namespace: req.namespace,
      pod: podName(req.pod),
      container: req.container,
      argv: req.command,
    };
    const cliIO: CliIO = {
      stdout: (chunk) => io.stdout(chunk),
      stderr: (chunk) => io.stderr(chunk),
      stdin: io.stdin,
      signal: io.signal,
    };
    const fault = faults.take(target, ['exec-fail', 'exec-hang']);
    if (fault?.kind === 'exec-fail') {
      const message = fault.message ?? 'injected failure';
      io.stderr(`${message}\n`);
      return { exitCode: fault.exitCode ?? 1, message };
    }
    if (fault?.kind === 'exec-hang') {
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return { exitCode: 137, message: 'killed: the client went away' };
    }
    const image = airflowImage(container.image, images);
    if (!image) return plainExec(req.command, cliIO);
    try {
      return await runAirflowCommand(
        cliContext(req.namespace, req.pod, container, image, req.command),
        req.command,
        cliIO,
      );
    } catch (error) {
      if (error instanceof AbortedError) return { exitCode: 137, message: 'killed: the client went away' };
      throw error;
    }
  }

  return {
    start,
    exec,
    violations,
    faults,
    sweep: async () => {
      await Promise.all([...servers.values()].map((server) => server.check()));
    },
    running: () => [...servers.values()].map(({ ref, kind, startedAt }) => ({ ...ref, kind, startedAt })),
    close: async () => {
      await Promise.all([...processes].map((p) => p.stop()));
      await pools.closeAll();
    },
  };
}

async function* emptyStdin(): AsyncIterable<Buffer> {}

/** Exec in a container that is not Airflow (pgbouncer, statsd, busybox…): a few shell basics. */
function plainExec(argv: readonly string[], io: CliIO): ExecResult {
  const [program, ...args] = argv;
  switch (program?.split('/').pop()) {
    case 'true':
      return { exitCode: 0 };
    case 'false':
      return { exitCode: 1 };
    case 'echo':
      io.stdout(`${args.join(' ')}\n`);
      return { exitCode: 0 };
    default: {
      const message = `exec: "${program ?? ''}": executable file not found in $PATH`;
      io.stderr(`${message}\n`);
      return { exitCode: 127, message };
    }
  }
}
