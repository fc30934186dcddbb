// Long-running subprocesses of tests (the guard's `serve`, CLI runs that may hang): each runs in a
// process group of its own and is killed, group and all, on every way the test worker can end —
// normal exit, SIGINT, SIGTERM, SIGHUP — so a failing or interrupted test leaves no process behind.
// global-setup.ts checks the outcome (leftovers.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const owned = new Set<ChildProcess>();

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Kills the child's whole process group (it leads one: spawned detached). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || !alive(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

function killAllOwned(): void {
  for (const child of owned) killGroup(child, 'SIGKILL');
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', killAllOwned);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllOwned();
      process.kill(process.pid, signal); // then end as the signal would have
    });
  }
}

/**
 * spawn() in a new process group, remembered until it exits. Stop it with `stopOwned` (or
 * killGroup); whatever is still running when the worker ends is killed then.
 */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  installExitHooks();
  const child = spawn(command, args, { ...options, detached: true });
  owned.add(child);
  child.once('exit', () => owned.delete(child));
  child.once('error', () => owned.delete(child));
  return child;
}

/** Sends `signal` to the child's group and resolves once the child has exited. */
export async function stopOwned(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.pid === undefined) return;
  const exited = alive(child) ? new Promise<void>((resolve) => child.once('exit', () => resolve())) : Promise.resolve();
  killGroup(child, signal);
  await exited;
}
