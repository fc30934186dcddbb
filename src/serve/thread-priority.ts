// Admission must answer the API server within its timeout; the coordinator's work (watch events,
// reconciles, audit writes) can wait a few milliseconds. On Linux a thread's nice value is its own,
// so once the admission worker thread exists, lowering the main thread's priority gives admission
// the CPU first whenever the pod's CPU is contended. Threads the main thread starts later inherit
// the lower priority. Elsewhere setpriority applies to the whole process, so nothing is done there.
import os from 'node:os';
import type { Logger } from '../log/logger.js';

export type PriorityOutcome = { applied: true; from: number; to: number } | { applied: false; reason: string };

export interface PriorityControl {
  platform: NodeJS.Platform;
  get(): number;
  set(nice: number): void;
}

const THIS_THREAD: PriorityControl = {
  platform: process.platform,
  get: () => os.getPriority(0),
  set: (nice) => os.setPriority(0, nice),
};

/** Lowers the calling (main) thread's priority by `by` nice steps (at most to 19); 0 leaves it alone. */
export function lowerMainThreadPriority(
  by: number,
  logger: Logger,
  control: PriorityControl = THIS_THREAD,
): PriorityOutcome {
  let outcome: PriorityOutcome;
  if (by <= 0) outcome = { applied: false, reason: 'disabled (--coordinator-nice 0)' };
  else if (control.platform !== 'linux')
    outcome = { applied: false, reason: `thread priorities are per process on ${control.platform}` };
  else {
    try {
      const from = control.get();
      const to = Math.min(19, from + by);
      control.set(to);
      outcome = { applied: true, from, to };
    } catch (error) {
      outcome = { applied: false, reason: (error as Error).message };
    }
  }
  if (outcome.applied)
    logger.info(
      { nice: outcome.to, was: outcome.from },
      "coordinator thread runs below the admission thread's priority",
    );
  else if (by > 0) logger.warn({ reason: outcome.reason }, 'coordinator thread priority left as it is');
  return outcome;
}
