// The step that runs in each phase. Held and the ends have none: they change only on an event from
// outside the steps (retry, abort, a return), through the table in transitions.ts.
import type { OperationState, Phase } from '../operation.js';
import { confirm } from './confirm.js';
import type { StepContext, StepResult } from './context.js';
import { downgrade } from './downgrade.js';
import { drain } from './drain.js';
import { forward } from './forward.js';
import { release } from './release.js';
import { restore } from './restore.js';
import { verify } from './verify.js';

export type Step = (ctx: StepContext, op: OperationState) => Promise<StepResult>;

export const STEPS: Readonly<Partial<Record<Phase, Step>>> = {
  confirm,
  quiesce: drain,
  downgrade,
  verify,
  drain,
  release,
  forward,
  restore,
};
