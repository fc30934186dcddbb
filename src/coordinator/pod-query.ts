// A fixed argv run in a pod of the newer version for what only the running image can tell (its
// schema heads map, a connection built at run time). The output is returned, never logged: it may
// be a secret. Failures say the exit code, not the output.
import type { ExecRunner } from '../k8s/exec.js';
import type { PodRecord } from './release-view.js';

/** Queries are short: a Python one-liner or `airflow config get-value`. */
export const POD_QUERY_TIMEOUT_MS = 60_000;

export async function queryPod(
  exec: ExecRunner,
  pod: Pick<PodRecord, 'namespace' | 'name' | 'container'>,
  argv: readonly string[],
  timeoutMs = POD_QUERY_TIMEOUT_MS,
): Promise<string> {
  if (!pod.container) throw new Error(`pod ${pod.name} has no Airflow container to run "${argv.join(' ')}" in`);
  const outcome = await exec({ namespace: pod.namespace, pod: pod.name, container: pod.container, argv, timeoutMs });
  if (outcome.exitCode !== 0) {
    const why = outcome.error ?? `exit code ${outcome.exitCode ?? '(none)'}`;
    throw new Error(`"${argv[0]} ${argv[1] ?? ''} …" in pod ${pod.name} failed: ${why.slice(0, 300)}`);
  }
  return outcome.stdout;
}
