// "No process and no file left behind", checked by the suite itself (global-setup.ts).
//
// Files: the run gets its own temporary directory, exported as TMPDIR before any test worker or
// subprocess starts, so everything a test (or a guard, Postgres, kubectl, Helm) puts in the
// temporary directory lands there; at the end it must be empty. The named caches are elsewhere
// and stay: node_modules/.cache/airflow-downgrade-guard, ~/.cache/airflow-downgrade-guard, Go's.
// Node's compile cache (tsc turns it on; by default it lives in the temporary directory) is moved
// to node_modules/.cache/airflow-downgrade-guard/node-compile-cache.
//
// Processes: every process started during the run inherits RUN_ENV=<run id>; at the end no process
// carrying it may be alive apart from vitest's own workers. Leftovers are named, then removed or
// killed so that one bad run does not poison the next, and the run fails.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RUN_ENV = 'ADG_TEST_RUN';

/** The named cache for Node's compile cache during test runs. */
export const COMPILE_CACHE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../node_modules/.cache/airflow-downgrade-guard/node-compile-cache',
);

export interface LeftoverProcess {
  pid: number;
  command: string;
}

export interface RunScope {
  id: string;
  tmpDir: string;
}

/** Starts the scope: a fresh TMPDIR and a run id every child process inherits. */
export function openRunScope(): RunScope {
  const id = randomBytes(8).toString('hex');
  const tmpDir = mkdtempSync(join(tmpdir(), 'adg-test-run-'));
  // Embedded PostgreSQL runs as the `postgres` user and reads files it is handed in here.
  chmodSync(tmpDir, 0o711);
  process.env.TMPDIR = tmpDir;
  process.env[RUN_ENV] = id;
  process.env.NODE_COMPILE_CACHE = COMPILE_CACHE;
  return { id, tmpDir };
}

/** The entries left in the run's temporary directory (top level, as tests create them). */
export function leftoverFiles(scope: RunScope): string[] {
  return readdirSync(scope.tmpDir).sort();
}

function readProc(pid: string, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined; // gone, or another user's process
  }
}

/** Live processes (not zombies) that inherited this run's id, except this process and vitest's workers. */
export function leftoverProcesses(scope: RunScope): LeftoverProcess[] {
  const marker = `${RUN_ENV}=${scope.id}`;
  const found: LeftoverProcess[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    if (Number(pid) === process.pid) continue;
    const environ = readProc(pid, 'environ');
    if (!environ?.split('\0').includes(marker)) continue;
    const stat = readProc(pid, 'stat') ?? '';
    if (/\) Z /.test(stat)) continue; // exited, waiting to be reaped
    const command = (readProc(pid, 'cmdline') ?? '').split('\0').filter(Boolean).join(' ');
    if (/node_modules\/vitest\//.test(command)) continue; // the pool's own workers, ended by vitest
    found.push({ pid: Number(pid), command: command.slice(0, 300) });
  }
  return found;
}

/**
 * Waits up to `graceMs` for the run's processes to end (a stopped server may still be exiting),
 * then names what is left, kills it, removes the run's TMPDIR, and throws when anything was left.
 */
export async function closeRunScope(scope: RunScope, graceMs = 10_000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let processes = leftoverProcesses(scope);
  while (processes.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    processes = leftoverProcesses(scope);
  }
  const files = leftoverFiles(scope);
  for (const p of processes) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(scope.tmpDir, { recursive: true, force: true });
  const problems = [
    ...processes.map((p) => `process ${p.pid} still running (killed now): ${p.command}`),
    ...files.map((f) => `file left in TMPDIR (removed now): ${f}`),
  ];
  if (problems.length > 0) {
    throw new Error(
      `the test run left ${processes.length} process(es) and ${files.length} file(s) behind:\n  ${problems.join('\n  ')}`,
    );
  }
}
