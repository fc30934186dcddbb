// `wait --release NAMESPACE/NAME [--timeout D]`: a signal a pipeline can trust after `helm upgrade
// --wait` (which counts a paused Deployment or a partition-held StatefulSet as ready). Polls the
// release until it is done (no operation open, no hold, every workload rolled out its current
// spec): exit 0; held, aborted or failed: 3 with the reason; timeout: 124; the cluster cannot be
// read: 1; bad flags: 2. Progress goes to stderr, the outcome to stdout.
import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CONFIG, parseGuardConfig, type GuardConfig } from '../../core/config.js';
import { ClusterAccessError, connect, describeClusterError, firstLine, type KubeConnection } from '../../plan/kube.js';
import { readReleaseSnapshot } from '../../wait/snapshot.js';
import { releaseVerdict, WAIT_EXIT, type ReleaseSnapshot } from '../../wait/verdict.js';
import { UsageArgumentError } from './manifests.js';

export interface WaitCliOptions {
  release: { namespace: string; name: string };
  timeout: number;
  interval: number;
  kubeconfig?: string;
  config?: string;
}

export interface WaitIo {
  stdout(text: string): void;
  stderr(text: string): void;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** The snapshot source; the cluster by default (tests pass their own). */
  snapshot?: () => Promise<ReleaseSnapshot>;
}

export const DEFAULT_TIMEOUT = '10m';
export const DEFAULT_INTERVAL = '2s';
/** Reads that may fail in a row (after the first one succeeded) before the cluster counts as unreadable. */
const MAX_FAILED_READS = 3;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A Go/Helm-style duration (`90s`, `10m`, `1h30m`, `500ms`) in milliseconds. */
export function parseDuration(text: string): number {
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(text) ? [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)] : [];
  const ms = parts.reduce((sum, [, n, unit]) => sum + Number(n) * (UNIT_MS[unit as string] ?? 0), 0);
  if (parts.length === 0 || ms <= 0)
    throw new UsageArgumentError(`${JSON.stringify(text.slice(0, 40))} is not a duration (like 90s, 10m, 1h30m)`);
  return Math.round(ms);
}

export function parseReleaseRef(text: string): { namespace: string; name: string } {
  const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(text);
  if (!match || match[1]!.length > 63 || match[3]!.length > 253)
    throw new UsageArgumentError(`${JSON.stringify(text.slice(0, 80))} is not NAMESPACE/NAME (like airflow/airflow)`);
  return { namespace: match[1]!, name: match[3]! };
}

function elapsed(ms: number): string {
  return ms < 60_000 ? `${Math.floor(ms / 1000)}s` : `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
}

async function loadConfig(path: string | undefined): Promise<GuardConfig> {
  if (path === undefined) return DEFAULT_CONFIG;
  return parseGuardConfig(parseYaml(await readFile(path, 'utf8')) ?? {});
}

/** Polls until the release is done, ends unsuccessfully, or the timeout passes; returns the exit code. */
export async function runWait(options: WaitCliOptions, io: WaitIo): Promise<number> {
  const ref = `${options.release.namespace}/${options.release.name}`;
  let connection: KubeConnection | undefined;
  let snapshot = io.snapshot;
  try {
    if (!snapshot) {
      let config: GuardConfig;
      try {
        config = await loadConfig(options.config);
      } catch (error) {
        io.stderr(`error: config ${options.config}: ${firstLine(error)}\n`);
        return WAIT_EXIT.usage;
      }
      const c = connect(options.kubeconfig);
      connection = c;
      snapshot = async () => {
        try {
          return await readReleaseSnapshot(c.cluster, options.release.namespace, options.release.name, config);
        } catch (error) {
          throw new ClusterAccessError(describeClusterError(error, c.server));
        }
      };
    }
    const started = io.now();
    const deadline = started + options.timeout;
    let reads = 0;
    let failedReads = 0;
    let shown = '';
    for (;;) {
      let verdict;
      try {
        verdict = releaseVerdict(await snapshot());
        reads += 1;
        failedReads = 0;
      } catch (error) {
        if (!(error instanceof ClusterAccessError)) throw error;
        failedReads += 1;
        if (reads === 0 || failedReads >= MAX_FAILED_READS) {
          io.stderr(`error: ${error.message}\n`);
          return WAIT_EXIT.unreadable;
        }
        io.stderr(`[${elapsed(io.now() - started)}] ${ref}: ${error.message}; trying again\n`);
        verdict = undefined;
      }
      if (verdict?.state === 'done') {
        io.stdout(`${verdict.summary} (after ${elapsed(io.now() - started)})\n`);
        return WAIT_EXIT.done;
      }
      if (verdict && verdict.state !== 'waiting') {
        io.stdout(`${ref} is ${verdict.state}: ${verdict.reason}\n`);
        return WAIT_EXIT.notDone;
      }
      if (verdict) {
        const text = verdict.reasons.join('; ');
        if (text !== shown) io.stderr(`[${elapsed(io.now() - started)}] waiting for ${ref}: ${text}\n`);
        shown = text;
      }
      if (io.now() >= deadline) {
        io.stdout(
          `${ref} is not done after ${elapsed(options.timeout)}: ${shown || 'the cluster could not be read'}\n`,
        );
        return WAIT_EXIT.timeout;
      }
      await io.sleep(Math.min(options.interval, Math.max(0, deadline - io.now())));
    }
  } catch (error) {
    if (error instanceof ClusterAccessError) {
      io.stderr(`error: ${error.message}\n`);
      return WAIT_EXIT.unreadable;
    }
    throw error;
  } finally {
    connection?.close();
  }
}

const HELP_AFTER = `
Done means: no downgrade operation open for the release, no workload of it carrying a hold of
the guard, none drained waiting for its update, and every Deployment, StatefulSet and Job
rolled out its current spec (Jobs: completed). A change applied but not yet admitted or not yet
observed by its controller counts as not done.

Run it after the deploy, e.g.:
  helm upgrade airflow apache-airflow/airflow -n airflow --wait --timeout 10m ... \\
    && airflow-downgrade-guard wait --release airflow/airflow --timeout 20m

Exit codes: 0 done, 3 held, aborted or failed (the reason on stdout), 124 timed out,
1 the cluster cannot be read, 2 bad flags. Progress goes to stderr.`;

export function register(program: Command): void {
  program
    .command('wait')
    .description('wait until a release is done: no operation open, no hold, every workload rolled out')
    .requiredOption('--release <namespace/name>', 'the release, as NAMESPACE/NAME', parseReleaseRef)
    .addOption(
      new Option('--timeout <duration>', 'give up after this long (like 90s, 10m, 1h30m)')
        .argParser(parseDuration)
        .default(parseDuration(DEFAULT_TIMEOUT), DEFAULT_TIMEOUT),
    )
    .addOption(
      new Option('--interval <duration>', 'how often to look')
        .argParser(parseDuration)
        .default(parseDuration(DEFAULT_INTERVAL), DEFAULT_INTERVAL),
    )
    .option('--kubeconfig <path>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster)')
    .option('--config <file>', 'guard configuration (YAML or JSON) with the labels the webhook runs with')
    .addHelpText('after', HELP_AFTER)
    .action(async (options: WaitCliOptions) => {
      const code = await runWait(options, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      });
      if (code !== 0) process.exitCode = code;
    });
}
