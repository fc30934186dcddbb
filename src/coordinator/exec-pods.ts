// Where and how the coordinator runs a migration command: in a Running, Ready pod of the newer
// version, else in a short-lived runner pod started from that version's pod template; the exec
// itself bounded by a semaphore, reported and with Events before and after.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ANNOTATIONS, type GuardConfig } from '../core/config.js';
import { formatArgv } from '../core/downgrade-command.js';
import { releaseKey, type ImageVersionLookup } from '../core/release.js';
import { isJsonObject, valueAt } from '../core/objects.js';
import type { Cluster } from '../k8s/cluster.js';
import type { ExecOutcome, ExecRunner } from '../k8s/exec.js';
import type { WatchCache } from '../k8s/watch-cache.js';
import { MANAGED_BY, MANAGED_BY_LABEL, type OperationState } from './operation.js';
import {
  RUNNER_LABEL,
  chooseExecPod,
  isOnVersion,
  projectWorkload,
  type PodRecord,
  type WorkloadRecord,
} from './release-view.js';
import type { Semaphore } from './semaphore.js';
import type { ExecPod, ExecStep, StepReport } from './steps/context.js';
import type { WorkloadGateway } from './workloads.js';

/** Event reasons of each command the coordinator execs (contracts: users filter on them). */
const EXEC_EVENT_REASONS: Record<ExecStep, { running: string; succeeded: string; failed: string }> = {
  downgrade: { running: 'DowngradeRunning', succeeded: 'DowngradeSucceeded', failed: 'DowngradeFailed' },
  'roll-forward': { running: 'RollForwardRunning', succeeded: 'RollForwardSucceeded', failed: 'RollForwardFailed' },
  forward: { running: 'MigrateForwardRunning', succeeded: 'MigrateForwardSucceeded', failed: 'MigrateForwardFailed' },
};

export interface ExecPodsDeps {
  /** Versions of images whose tag names none, as resolved so far (release-view.ts projections). */
  versionLookup?: ImageVersionLookup;
  cluster: Cluster;
  config: GuardConfig;
  exec: ExecRunner;
  execSlots: Semaphore;
  execTimeoutMs: number;
  logger: Logger;
  /** The pod watch cache (started after this is built). */
  pods: () => WatchCache<PodRecord>;
  workloads: WorkloadGateway;
  releaseWorkloads(namespace: string, release: string): WorkloadRecord[];
  report(report: StepReport): void;
}

export class ExecPods {
  /** Operations that started a runner pod here (it may exist before the pod cache shows it). */
  private readonly runnerStarted = new Set<string>();

  constructor(private readonly deps: ExecPodsDeps) {}

  /** A Running, Ready pod of the newer version; else a short-lived runner pod from its template. */
  async choose(op: OperationState): Promise<ExecPod | undefined> {
    const chosen = chooseExecPod(
      this.deps.pods().group(releaseKey(op.namespace, op.release)),
      op.release,
      op.namespace,
      op.fromRevision,
      op.fromVersion,
    );
    if (chosen) {
      const runner = chosen.runnerFor === op.release;
      if (!op.execPod || op.execPod.name !== chosen.name) {
        this.deps.report({
          operation: op,
          step: 'choose-exec-pod',
          event: 'end',
          outcome: 'ok',
          execPod: chosen.name,
          detail: `${chosen.component} pod ${chosen.name}${runner ? ' (runner)' : ''}`,
        });
      }
      return { name: chosen.name, container: chosen.container!, component: chosen.component, runner };
    }
    await this.ensureRunner(op);
    return undefined;
  }

  /** Runs `argv` in the operation's exec pod. */
  async run(op: OperationState, step: ExecStep, argv: string[]): Promise<ExecOutcome> {
    const pod = op.execPod!;
    const command = formatArgv(argv);
    const reasons = EXEC_EVENT_REASONS[step];
    this.deps.report({ operation: op, step, event: 'start', execPod: pod.name, command: argv });
    this.deps.workloads.event(op, 'Normal', reasons.running, `Running "${command}" in pod ${pod.name}`);
    const returnPermit = await this.deps.execSlots.acquire();
    let outcome: ExecOutcome;
    try {
      outcome = await this.deps.exec({
        namespace: op.namespace,
        pod: pod.name,
        container: pod.container,
        argv,
        timeoutMs: this.deps.execTimeoutMs,
        onOutput: (stream, text) => {
          for (const line of text.split('\n')) {
            if (line.trim())
              this.deps.logger.info(
                { operation: op.id, pod: pod.name, stream, line: line.slice(0, 1000) },
                'exec output',
              );
          }
        },
      });
    } finally {
      returnPermit();
    }
    const ok = outcome.exitCode === 0;
    const output = (outcome.stdout + outcome.stderr).slice(-4096);
    this.deps.report({
      operation: op,
      step,
      event: 'end',
      outcome: ok ? 'ok' : 'failed',
      durationMs: outcome.durationMs,
      execPod: pod.name,
      command: argv,
      ...(outcome.exitCode !== undefined ? { exitCode: outcome.exitCode } : {}),
      output,
      ...(outcome.error ? { error: outcome.error } : {}),
    });
    this.deps.workloads.event(
      op,
      ok ? 'Normal' : 'Warning',
      ok ? reasons.succeeded : reasons.failed,
      ok
        ? `"${command}" finished in ${outcome.durationMs} ms`
        : `"${command}" failed: ${outcome.error ?? `exit code ${outcome.exitCode}`}`,
    );
    return outcome;
  }

  async deleteRunner(op: OperationState): Promise<void> {
    const name = runnerName(op);
    // Ask the API only when a runner may exist that the pod cache has not shown yet.
    const mayExist = this.runnerStarted.has(op.id) || op.execPod?.runner === true;
    if (
      this.deps.pods().get(op.namespace, name) ||
      (mayExist && (await this.deps.cluster.find('Pod', op.namespace, name)))
    ) {
      await this.deps.cluster.delete('Pod', op.namespace, name, 0);
    }
  }

  private async ensureRunner(op: OperationState): Promise<void> {
    const name = runnerName(op);
    if (this.deps.pods().get(op.namespace, name) || (await this.deps.cluster.find('Pod', op.namespace, name))) return;
    const template = await this.newerTemplate(op);
    if (!template) {
      throw new Error(`no running pod of ${op.fromVersion} and no pod template of it to start a runner from`);
    }
    const spec = runnerPodSpec(template.template, template.container);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: op.namespace,
        labels: { [RUNNER_LABEL]: op.release.slice(0, 63), [MANAGED_BY_LABEL]: MANAGED_BY },
        annotations: { [ANNOTATIONS.airflowVersion]: op.fromVersion, [ANNOTATIONS.operation]: op.id },
      },
      spec,
    };
    await this.deps.cluster.create('Pod', op.namespace, pod);
    this.runnerStarted.add(op.id);
    this.deps.report({
      operation: op,
      step: 'choose-exec-pod',
      event: 'end',
      outcome: 'waiting',
      execPod: name,
      detail: `no pod of ${op.fromVersion} runs; started runner pod ${name} from ${template.source}`,
    });
    this.deps.workloads.event(
      op,
      'Normal',
      'RunnerPodStarted',
      `No pod of ${op.fromVersion} is running; started short-lived runner pod ${name} from ${template.source} to run the downgrade`,
    );
  }

  /**
   * The pod template of the newer version: a ReplicaSet that ran it first (it stays as it was, while a
   * workload still on that version may be changed by the rollout in progress at any moment), else a
   * workload (StatefulSets have no ReplicaSets) whose spec is, when read, still on it.
   */
  private async newerTemplate(
    op: OperationState,
  ): Promise<{ template: Record<string, unknown>; container: string; source: string } | undefined> {
    const replicaSets = await this.deps.cluster.list('ReplicaSet', op.namespace);
    for (const rs of replicaSets.items) {
      const rec = projectWorkload('Deployment', rs, this.deps.config, this.deps.versionLookup);
      const template = valueAt(rs, ['spec', 'template']);
      if (
        rec &&
        rec.release === op.release &&
        isOnVersion(rec, op.fromRevision, op.fromVersion) &&
        rec.role === 'metadata-db' &&
        isJsonObject(template)
      ) {
        const container = mainContainerName(template, rec.component);
        if (container)
          return { template, container, source: `replicaset/${String(valueAt(rs, ['metadata', 'name']))}` };
      }
    }
    const candidates = this.deps
      .releaseWorkloads(op.namespace, op.release)
      .filter(
        (w) => isOnVersion(w, op.fromRevision, op.fromVersion) && (w.kind === 'Deployment' || w.kind === 'StatefulSet'),
      );
    for (const w of candidates) {
      const read = await this.deps.workloads.read(w);
      const template = valueAt(read?.obj, ['spec', 'template']);
      if (isJsonObject(template) && read?.rec && isOnVersion(read.rec, op.fromRevision, op.fromVersion)) {
        const container = mainContainerName(template, w.component);
        if (container) return { template, container, source: `${w.kind.toLowerCase()}/${w.name}` };
      }
    }
    return undefined;
  }
}

function runnerName(op: OperationState): string {
  const hash = createHash('sha256').update(`${op.namespace}/${op.release}/${op.id}`).digest('hex').slice(0, 10);
  return `airflow-downgrade-guard-runner-${hash}`;
}

function mainContainerName(template: Record<string, unknown>, component: string): string | undefined {
  const containers = valueAt(template, ['spec', 'containers']);
  if (!Array.isArray(containers)) return undefined;
  const names = containers.flatMap((c) => (isJsonObject(c) && typeof c.name === 'string' ? [c.name] : []));
  return names.find((n) => n === component) ?? names[0];
}

/** The newer version's pod spec, reduced to its main container idling so we can exec into it. */
function runnerPodSpec(template: Record<string, unknown>, container: string): Record<string, unknown> {
  const spec = structuredClone(valueAt(template, ['spec']) as Record<string, unknown>);
  const containers = (spec.containers as Array<Record<string, unknown>>).filter((c) => c.name === container);
  for (const c of containers) {
    c.command = ['sleep', 'infinity'];
    delete c.args;
    delete c.readinessProbe;
    delete c.livenessProbe;
    delete c.startupProbe;
    delete c.ports;
  }
  spec.containers = containers;
  delete spec.initContainers;
  spec.restartPolicy = 'Never';
  delete spec.nodeName;
  return spec;
}
